//! Where settings come from: builder > environment > profile, and conflicts.

mod common;

use cm_api::{ConfigError, Endpoint, Error};
use common::{config_file, no_config, with_env};

const PROFILES: &str = r#"
default_profile = "dev"

[profiles.dev]
endpoint = "https://cloud.uipath.com/acme/Dev/reinfer_"
token_env = "DEV_TOKEN"
default_project = "support"

[profiles.prod]
endpoint = "https://cloud.uipath.com/acme/Prod/reinfer_"
client_id = "prod-app"
client_secret_env = "PROD_SECRET"
scope = "Ixp.ApiAccess"
"#;

fn config_error(result: Result<cm_api::Client, Error>) -> ConfigError {
    match result {
        Err(Error::Config(e)) => e,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn environment_alone_is_enough() {
    let client = with_env(&[
        ("REINFER_ENDPOINT", "https://acme.reinfer.io/api"),
        ("REINFER_TOKEN", "t"),
    ])
    .config_path(no_config())
    .build()
    .unwrap();
    assert_eq!(client.endpoint().base_url(), "https://acme.reinfer.io");
    assert_eq!(client.default_project(), None);
}

#[test]
fn default_profile_applies_when_nothing_else_is_set() {
    let path = config_file("default-profile", PROFILES);
    let client = with_env(&[("DEV_TOKEN", "dev-token")])
        .config_path(&path)
        .build()
        .unwrap();
    assert_eq!(client.endpoint().tenant(), Some("Dev"));
    assert_eq!(client.default_project(), Some("support"));
}

#[test]
fn config_path_can_come_from_the_environment() {
    let path = config_file("env-path", PROFILES);
    let client = with_env(&[
        ("CM_API_CONFIG", path.to_str().unwrap()),
        ("DEV_TOKEN", "x"),
    ])
    .build()
    .unwrap();
    assert_eq!(client.endpoint().tenant(), Some("Dev"));
}

#[test]
fn environment_overrides_the_default_profile_silently() {
    let path = config_file("env-over-default", PROFILES);
    let client = with_env(&[
        ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
        ("REINFER_TOKEN", "t"),
    ])
    .config_path(&path)
    .build()
    .unwrap();
    assert_eq!(client.endpoint().base_url(), "https://acme.reinfer.io");
    // The default profile still supplies what the environment does not.
    assert_eq!(client.default_project(), Some("support"));
}

#[test]
fn builder_overrides_environment_and_profile() {
    let path = config_file("builder-wins", PROFILES);
    let client = with_env(&[
        ("REINFER_ENDPOINT", "https://other.reinfer.io"),
        ("REINFER_PROFILE", "prod"),
        ("REINFER_TOKEN", "env-token"),
    ])
    .config_path(&path)
    .endpoint(Endpoint::reinfer("code").unwrap())
    .default_project("mine")
    .token("code-token")
    .build()
    .unwrap();
    assert_eq!(client.endpoint().base_url(), "https://code.reinfer.io");
    assert_eq!(client.default_project(), Some("mine"));
}

#[test]
fn env_endpoint_conflicting_with_an_explicit_profile_is_an_error() {
    let path = config_file("conflict-env-profile", PROFILES);
    let err = config_error(
        with_env(&[
            ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
            ("REINFER_PROFILE", "prod"),
            ("PROD_SECRET", "s"),
        ])
        .config_path(&path)
        .build(),
    );
    assert_eq!(
        err.to_string(),
        "invalid configuration: conflicting endpoint: environment variable REINFER_ENDPOINT (https://acme.reinfer.io) and profile \"prod\" (selected by environment variable REINFER_PROFILE) (https://cloud.uipath.com/acme/Prod/reinfer_) disagree; remove one of them"
    );

    let err = config_error(
        with_env(&[
            ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
            ("PROD_SECRET", "s"),
        ])
        .config_path(&path)
        .profile("prod")
        .build(),
    );
    assert!(
        matches!(&err, ConfigError::Conflict { setting: "endpoint", second, .. } if second.contains("selected by ClientBuilder::profile")),
        "{err}"
    );
}

#[test]
fn env_endpoint_equal_to_the_profile_endpoint_is_fine() {
    let path = config_file("no-conflict", PROFILES);
    let client = with_env(&[
        (
            "REINFER_ENDPOINT",
            "https://cloud.uipath.com/acme/Prod/reinfer_/api/",
        ),
        ("REINFER_PROFILE", "prod"),
        ("PROD_SECRET", "s"),
    ])
    .config_path(&path)
    .build()
    .unwrap();
    assert_eq!(client.endpoint().tenant(), Some("Prod"));
}

#[test]
fn env_token_overrides_profile_credentials() {
    let path = config_file("env-token", PROFILES);
    // PROD_SECRET is not set: the profile's credentials are not consulted.
    let client = with_env(&[("REINFER_TOKEN", "t"), ("REINFER_PROFILE", "prod")])
        .config_path(&path)
        .build();
    assert!(client.is_ok(), "{client:?}");
}

#[test]
fn a_missing_variable_named_by_a_profile_is_reported() {
    let path = config_file("missing-var", PROFILES);
    let err = config_error(with_env(&[]).config_path(&path).profile("prod").build());
    assert_eq!(
        err.to_string(),
        "invalid configuration: environment variable PROD_SECRET (named by profile \"prod\" (selected by ClientBuilder::profile)) is not set or empty"
    );
}

#[test]
fn two_credential_kinds_in_one_source_conflict() {
    let err = config_error(
        with_env(&[
            ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
            ("REINFER_TOKEN", "t"),
            ("REINFER_CLIENT_ID", "id"),
            ("REINFER_CLIENT_SECRET", "s"),
        ])
        .config_path(no_config())
        .build(),
    );
    assert_eq!(
        err.to_string(),
        "invalid configuration: conflicting credentials: environment variable REINFER_TOKEN and environment variables REINFER_CLIENT_ID/REINFER_CLIENT_SECRET disagree; remove one of them"
    );

    let err = config_error(
        with_env(&[])
            .config_path(no_config())
            .endpoint(Endpoint::reinfer("acme").unwrap())
            .token("t")
            .client_credentials(cm_api::ClientCredentials::new("id", "s"))
            .build(),
    );
    assert!(
        matches!(
            err,
            ConfigError::Conflict {
                setting: "credentials",
                ..
            }
        ),
        "{err}"
    );

    let err = config_error(
        with_env(&[
            ("REINFER_ENDPOINT", "https://acme.reinfer.io"),
            ("REINFER_CLIENT_ID", "id"),
        ])
        .config_path(no_config())
        .build(),
    );
    assert!(
        matches!(&err, ConfigError::MissingEnvVar { var, .. } if var == "REINFER_CLIENT_SECRET"),
        "{err}"
    );
}

#[test]
fn unknown_profiles_and_bad_files_are_reported() {
    let path = config_file("unknown", PROFILES);
    let err = config_error(with_env(&[]).config_path(&path).profile("staging").build());
    let text = err.to_string();
    assert!(text.starts_with("invalid configuration: profile \"staging\" (selected by ClientBuilder::profile) is not defined in "), "{text}");
    assert!(text.ends_with("(defined: dev, prod)"), "{text}");

    let err = config_error(
        with_env(&[("REINFER_PROFILE", "dev")])
            .config_path(no_config())
            .build(),
    );
    assert!(matches!(err, ConfigError::UnknownProfile { .. }), "{err}");

    let inline_secret = config_file(
        "inline",
        "[profiles.dev]\nendpoint = \"https://a.reinfer.io\"\ntoken = \"s3cret\"\n",
    );
    let err = config_error(
        with_env(&[])
            .config_path(&inline_secret)
            .profile("dev")
            .build(),
    );
    assert!(matches!(err, ConfigError::ConfigFile { .. }), "{err}");
    assert!(err.to_string().contains("unknown field `token`"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn missing_endpoint_credentials_and_bad_values() {
    let err = config_error(
        with_env(&[("REINFER_TOKEN", "t")])
            .config_path(no_config())
            .build(),
    );
    assert!(matches!(err, ConfigError::MissingEndpoint), "{err}");

    let err = config_error(
        with_env(&[("REINFER_ENDPOINT", "https://acme.reinfer.io")])
            .config_path(no_config())
            .build(),
    );
    assert!(matches!(err, ConfigError::MissingCredentials), "{err}");

    let err = config_error(
        with_env(&[
            ("REINFER_ENDPOINT", "http://cloud.uipath.com"),
            ("REINFER_TOKEN", "t"),
        ])
        .config_path(no_config())
        .build(),
    );
    assert_eq!(
        err.to_string(),
        "invalid configuration: the endpoint from environment variable REINFER_ENDPOINT is invalid: plain http is only allowed to loopback hosts, not `cloud.uipath.com`: use https"
    );
    assert!(std::error::Error::source(&err).is_some());

    // Client credentials need a token URL off UiPath hosts.
    let err = config_error(
        with_env(&[])
            .config_path(no_config())
            .endpoint(Endpoint::reinfer("acme").unwrap())
            .client_credentials(cm_api::ClientCredentials::new("id", "s"))
            .build(),
    );
    assert!(matches!(err, ConfigError::MissingTokenUrl { .. }), "{err}");

    let err = config_error(
        with_env(&[])
            .config_path(no_config())
            .endpoint(Endpoint::reinfer("acme").unwrap())
            .token("")
            .build(),
    );
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
}
