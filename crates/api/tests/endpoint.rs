//! Endpoint forms and the rejection of bad input.

use cm_api::{Endpoint, EndpointError};

#[test]
fn uipath_cloud_form() {
    let e = Endpoint::uipath_cloud("acme", "DefaultTenant").unwrap();
    assert_eq!(
        e.base_url(),
        "https://cloud.uipath.com/acme/DefaultTenant/reinfer_"
    );
    assert_eq!(e.organisation(), Some("acme"));
    assert_eq!(e.tenant(), Some("DefaultTenant"));
    assert_eq!(
        e.identity_token_url().as_deref(),
        Some("https://cloud.uipath.com/identity_/connect/token")
    );
}

#[test]
fn other_uipath_host_form() {
    let e = Endpoint::uipath("https://automation.example.com:8443/", "org", "ten").unwrap();
    assert_eq!(
        e.base_url(),
        "https://automation.example.com:8443/org/ten/reinfer_"
    );
    assert_eq!(
        e.identity_token_url().as_deref(),
        Some("https://automation.example.com:8443/identity_/connect/token")
    );
    assert!(matches!(
        Endpoint::uipath("https://automation.example.com/x", "org", "ten"),
        Err(EndpointError::UnexpectedPath { .. })
    ));
}

#[test]
fn reinfer_form() {
    let e = Endpoint::reinfer("Acme").unwrap();
    assert_eq!(e.base_url(), "https://acme.reinfer.io");
    assert_eq!(e.identity_token_url(), None);
    assert_eq!(Endpoint::parse("https://acme.reinfer.io/api/").unwrap(), e);
}

#[test]
fn custom_base_urls_are_normalised() {
    for (input, expected) in [
        ("https://cm.example.com", "https://cm.example.com"),
        ("https://cm.example.com/", "https://cm.example.com"),
        ("https://cm.example.com/api", "https://cm.example.com"),
        ("https://cm.example.com/api/", "https://cm.example.com"),
        ("https://cm.example.com//api//", "https://cm.example.com"),
        (
            "https://cm.example.com/prefix/api",
            "https://cm.example.com/prefix",
        ),
        (
            "  https://CM.example.com/prefix/  ",
            "https://cm.example.com/prefix",
        ),
        ("https://cm.example.com/apis", "https://cm.example.com/apis"),
        ("http://127.0.0.1:8080/api", "http://127.0.0.1:8080"),
        ("http://localhost:1234", "http://localhost:1234"),
        ("http://[::1]:1234/", "http://[::1]:1234"),
    ] {
        assert_eq!(
            Endpoint::parse(input).unwrap().base_url(),
            expected,
            "{input}"
        );
    }
}

#[test]
fn parse_recognises_uipath_urls() {
    let e = Endpoint::parse("https://cloud.uipath.com/acme/DefaultTenant/reinfer_/api").unwrap();
    assert_eq!(e, Endpoint::uipath_cloud("acme", "DefaultTenant").unwrap());
    assert_eq!(e.tenant(), Some("DefaultTenant"));
    let custom = Endpoint::parse("https://cm.example.com").unwrap();
    assert_eq!(custom.organisation(), None);
    assert_eq!(custom.identity_token_url(), None);
}

#[test]
fn bad_names_are_rejected() {
    for (org, tenant, field) in [
        ("", "t", "organisation"),
        ("o", "", "tenant"),
        ("a/b", "t", "organisation"),
        ("o", "t/x", "tenant"),
        ("o", "t x", "tenant"),
        ("o?", "t", "organisation"),
        ("..", "t", "organisation"),
    ] {
        match Endpoint::uipath_cloud(org, tenant) {
            Err(EndpointError::InvalidName { field: f, .. }) => {
                assert_eq!(f, field, "{org}/{tenant}")
            }
            other => panic!("{org}/{tenant}: {other:?}"),
        }
    }
    assert_eq!(
        Endpoint::uipath_cloud("", "t").unwrap_err().to_string(),
        "invalid organisation ``: must not be empty"
    );
    assert_eq!(
        Endpoint::uipath_cloud("o", "a/b").unwrap_err().to_string(),
        "invalid tenant `a/b`: must not contain a slash"
    );
    for domain in ["", "acme.reinfer.io", "-acme", "a_b"] {
        assert!(
            matches!(
                Endpoint::reinfer(domain),
                Err(EndpointError::InvalidName {
                    field: "domain",
                    ..
                })
            ),
            "{domain}"
        );
    }
}

#[test]
fn bad_urls_are_rejected() {
    assert_eq!(Endpoint::parse("  ").unwrap_err(), EndpointError::Empty);
    assert!(matches!(
        Endpoint::parse("cloud.uipath.com/acme"),
        Err(EndpointError::NotAUrl { .. })
    ));
    assert!(matches!(
        Endpoint::parse("not a url"),
        Err(EndpointError::NotAUrl { .. })
    ));
    assert_eq!(
        Endpoint::parse("http://cloud.uipath.com/acme/t/reinfer_").unwrap_err(),
        EndpointError::InsecureHttp {
            host: "cloud.uipath.com".into()
        }
    );
    assert_eq!(
        Endpoint::parse("http://cloud.uipath.com")
            .unwrap_err()
            .to_string(),
        "plain http is only allowed to loopback hosts, not `cloud.uipath.com`: use https"
    );
    assert!(matches!(
        Endpoint::parse("http://10.0.0.1"),
        Err(EndpointError::InsecureHttp { .. })
    ));
    assert!(matches!(
        Endpoint::parse("ftp://example.com"),
        Err(EndpointError::UnsupportedScheme { .. })
    ));
    assert_eq!(
        Endpoint::parse("https://u:p@example.com").unwrap_err(),
        EndpointError::EmbeddedCredentials
    );
    assert_eq!(
        Endpoint::parse("https://example.com/?x=1").unwrap_err(),
        EndpointError::QueryOrFragment
    );
    assert_eq!(
        Endpoint::parse("https://example.com/#f").unwrap_err(),
        EndpointError::QueryOrFragment
    );
    assert!(matches!(
        Endpoint::parse("mailto:a@example.com"),
        Err(EndpointError::EmbeddedCredentials | EndpointError::NotAUrl { .. })
    ));
    assert!(matches!(
        Endpoint::uipath_cloud("o", "t").map(|_| ()),
        Ok(())
    ));
}

#[test]
fn a_bad_endpoint_in_code_converts_to_a_configuration_error() {
    fn build() -> Result<cm_api::Endpoint, cm_api::Error> {
        Ok(cm_api::Endpoint::uipath_cloud("", "DefaultTenant")?)
    }
    let error = build().unwrap_err();
    assert!(matches!(error, cm_api::Error::Config(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("invalid configuration: the endpoint from code is invalid: "),
        "{error}"
    );
    assert_eq!(error.status(), None);
}
