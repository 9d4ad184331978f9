//! Users, the tokens that act for them, and the OAuth applications
//! registered to them.

use std::time::{Duration, Instant};

use super::*;

/// A user of the tenant.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) email: String,
    created: DateTime<Utc>,
    verified: bool,
    /// The last successful OAuth token grant (a login); API tokens do not log in.
    last_login_at: Option<DateTime<Utc>>,
    global_permissions: BTreeSet<String>,
    /// Project name → permissions in that project.
    organisation_permissions: BTreeMap<String, BTreeSet<String>>,
}

/// A bearer token: the user it acts for, until when.
#[derive(Debug)]
pub(crate) struct Token {
    user_id: String,
    /// `None`: an API token, valid until its user is deleted.
    expires_at: Option<Instant>,
}

/// An OAuth application (client credentials) registered to a user.
#[derive(Debug)]
pub(crate) struct OAuthApp {
    secret: String,
    user_id: String,
}

/// Client credentials of an OAuth application registered in the sandbox,
/// for `cm_api::ClientCredentials::new(client_id, client_secret)`.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The application (client) id.
    pub client_id: String,
    /// The application secret.
    pub client_secret: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Who made a request and what they may do, read when it arrived.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user_id: String,
    global: BTreeSet<String>,
    projects: BTreeMap<String, BTreeSet<String>>,
}

impl Caller {
    /// Whether the caller holds `permission` for a request on `project`
    /// (the path's `{project}`): globally, or in that project. A request
    /// that names no project (`/sources/id:{id}`, `/sources`) is allowed
    /// when the caller holds the permission in any project.
    pub(crate) fn holds(&self, permission: &str, project: Option<&str>) -> bool {
        if self.global.contains(permission) {
            return true;
        }
        match project {
            Some(project) => self
                .projects
                .get(project)
                .is_some_and(|p| p.contains(permission)),
            None => self.projects.values().any(|p| p.contains(permission)),
        }
    }
}

/// Why a token was refused.
pub(crate) enum Refused {
    Unknown,
    Expired,
}

/// Why a client-credentials grant was refused.
pub(crate) enum GrantRefused {
    /// Unknown client id, wrong secret, or the user is gone.
    InvalidClient,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    user: UserNew,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserNew {
    username: String,
    email: String,
    #[serde(default)]
    organisation_permissions: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    global_permissions: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserRequest {
    user: UserUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    organisation_permissions: Option<BTreeMap<String, BTreeSet<String>>>,
    global_permissions: Option<BTreeSet<String>>,
}

/// The body of calls that take none: `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl User {
    /// The user as the private routes answer it (`User`, every field).
    fn json(&self) -> Value {
        let global: Vec<&String> = self.global_permissions.iter().collect();
        let projects: Map<String, Value> = self
            .organisation_permissions
            .iter()
            .map(|(project, perms)| (project.clone(), json!(perms)))
            .collect();
        json!({
            "id": self.id,
            "username": self.username,
            "email": self.email,
            "created": ts(self.created),
            "verified": self.verified,
            "last_login_at": self.last_login_at.map(ts),
            "is_support_user": false,
            "global_permissions": global,
            "sso_global_permissions": [],
            "derived_user_global_permissions": global,
            "derived_global_permissions": global,
            "organisation_permissions": projects,
            "derived_organisation_permissions": projects,
        })
    }

    /// The user as the public listing answers it (`UserV1`).
    fn public_json(&self) -> Value {
        json!({
            "username": self.username,
            "email": self.email,
            "last_login_at": self.last_login_at.map(ts),
        })
    }

    /// The user as audit events reference it (`AuditEventUser`).
    pub(super) fn audit_json(&self, tenant_id: &str) -> Value {
        json!({
            "id": self.id,
            "tenant_id": tenant_id,
            "username": self.username,
            "email": self.email,
            "display_name": self.username,
        })
    }
}

impl State {
    /// A new user, verified, holding `global` permissions; with a fresh
    /// API token.
    fn add_user(&mut self, username: String, global: BTreeSet<String>) -> (String, String) {
        let id = self.new_id();
        let user = User {
            id: id.clone(),
            email: format!("{username}@sandbox.example"),
            username,
            created: self.clock.now(),
            verified: true,
            last_login_at: None,
            global_permissions: global,
            organisation_permissions: BTreeMap::new(),
        };
        self.users.insert(id.clone(), user);
        let token = self.issue_token(&id, None);
        (id, token)
    }

    /// The sandbox's administrator (`admin`), holding `permissions`
    /// globally; its user id and API token.
    pub(crate) fn add_admin(&mut self, permissions: BTreeSet<String>) -> (String, String) {
        self.add_user("admin".to_owned(), permissions)
    }

    /// A new user (`user-<n>`) holding exactly `permissions`, globally;
    /// its API token.
    pub(crate) fn mint_user(&mut self, permissions: BTreeSet<String>) -> String {
        let mut n = self.users.len();
        let username = loop {
            let name = format!("user-{n}");
            if !self.users.values().any(|u| u.username == name) {
                break name;
            }
            n += 1;
        };
        self.add_user(username, permissions).1
    }

    /// A new bearer token acting for `user_id`, valid for `lifetime`
    /// (`None`: until the user is deleted).
    fn issue_token(&mut self, user_id: &str, lifetime: Option<Duration>) -> String {
        let token = self.new_token();
        self.tokens.insert(
            token.clone(),
            Token {
                user_id: user_id.to_owned(),
                expires_at: lifetime.and_then(|l| Instant::now().checked_add(l)),
            },
        );
        token
    }

    /// A new API token for an existing user.
    pub(crate) fn token_for_user(&mut self, user_id: &str) -> Option<String> {
        self.users
            .contains_key(user_id)
            .then(|| self.issue_token(user_id, None))
    }

    /// A new OAuth application registered to an existing user.
    pub(crate) fn register_oauth_client(&mut self, user_id: &str) -> Option<OAuthClient> {
        if !self.users.contains_key(user_id) {
            return None;
        }
        let client_id = format!("sbx-app-{}", self.new_id());
        let client_secret = self.new_token();
        self.oauth_clients.insert(
            client_id.clone(),
            OAuthApp {
                secret: client_secret.clone(),
                user_id: user_id.to_owned(),
            },
        );
        Some(OAuthClient {
            client_id,
            client_secret,
        })
    }

    /// The client-credentials grant: an access token valid for `lifetime`
    /// acting for the application's user, whose login time it records.
    pub(crate) fn grant_client_credentials(
        &mut self,
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> Result<String, GrantRefused> {
        let user_id = match self.oauth_clients.get(client_id) {
            Some(app) if app.secret == client_secret && self.users.contains_key(&app.user_id) => {
                app.user_id.clone()
            }
            _ => return Err(GrantRefused::InvalidClient),
        };
        let now = self.clock.now();
        if let Some(user) = self.users.get_mut(&user_id) {
            user.last_login_at = Some(now);
        }
        Ok(self.issue_token(&user_id, Some(lifetime)))
    }

    /// The caller a bearer token acts for; an expired token is forgotten.
    pub(crate) fn authenticate(&mut self, token: &str) -> Result<Caller, Refused> {
        let entry = self.tokens.get(token).ok_or(Refused::Unknown)?;
        if entry.expires_at.is_some_and(|at| Instant::now() >= at) {
            self.tokens.remove(token);
            return Err(Refused::Expired);
        }
        let user = self.users.get(&entry.user_id).ok_or(Refused::Unknown)?;
        Ok(Caller {
            user_id: user.id.clone(),
            global: user.global_permissions.clone(),
            projects: user.organisation_permissions.clone(),
        })
    }

    fn require_user(&self, id: &str) -> Result<&User, ApiError> {
        self.users
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("user with id `{id}`")))
    }

    /// 404 naming the first project of `permissions` that does not exist.
    fn require_projects(
        &self,
        permissions: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<(), ApiError> {
        permissions
            .keys()
            .try_for_each(|project| self.require_project(project).map(|_| ()))
    }

    pub(crate) fn get_current_user(&self, caller: &str) -> Result<Value, ApiError> {
        Ok(json!({"user": self.require_user(caller)?.json()}))
    }

    pub(crate) fn refresh_user_permissions(&self, body: Value) -> Result<Value, ApiError> {
        let _: Empty = decode_value(body, "")?;
        // Permissions are read on every request: there is nothing to reload.
        Ok(json!({"permissions_refreshed": true}))
    }

    pub(crate) fn list_users(&self, full: bool) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| if full { u.json() } else { u.public_json() })
            .collect();
        json!({"users": users})
    }

    pub(crate) fn get_user(&self, id: &str) -> Result<Value, ApiError> {
        Ok(json!({"user": self.require_user(id)?.json()}))
    }

    pub(crate) fn create_user(&mut self, body: Value) -> Result<Value, ApiError> {
        let request: CreateUserRequest = decode_value(body, "")?;
        let new = request.user;
        if new.username.trim().is_empty() {
            return Err(ApiError::unprocessable(
                "`user.username`: must not be empty",
            ));
        }
        if !new.email.contains('@') {
            return Err(ApiError::unprocessable(format!(
                "`user.email`: not an email address: {:?}",
                new.email
            )));
        }
        if self.users.values().any(|u| u.username == new.username) {
            return Err(ApiError::conflict(format!("user `{}`", new.username)));
        }
        if self.users.values().any(|u| u.email == new.email) {
            return Err(ApiError::conflict(format!(
                "user with email `{}`",
                new.email
            )));
        }
        self.require_projects(&new.organisation_permissions)?;
        let id = self.new_id();
        let user = User {
            id: id.clone(),
            username: new.username,
            email: new.email,
            created: self.clock.now(),
            verified: false,
            last_login_at: None,
            global_permissions: new.global_permissions,
            organisation_permissions: new.organisation_permissions,
        };
        let out = json!({"user": user.json()});
        self.users.insert(id, user);
        Ok(out)
    }

    pub(crate) fn update_user(&mut self, id: &str, body: Value) -> Result<Value, ApiError> {
        let request: UpdateUserRequest = decode_value(body, "")?;
        self.require_user(id)?;
        if let Some(projects) = &request.user.organisation_permissions {
            self.require_projects(projects)?;
        }
        let user = self.users.get_mut(id).expect("checked above");
        if let Some(projects) = request.user.organisation_permissions {
            user.organisation_permissions = projects;
        }
        if let Some(global) = request.user.global_permissions {
            user.global_permissions = global;
        }
        Ok(json!({"user": user.json()}))
    }

    /// Deletes a user, its tokens and its OAuth applications.
    pub(crate) fn delete_user(&mut self, id: &str) -> Result<Value, ApiError> {
        self.require_user(id)?;
        self.users.remove(id);
        self.tokens.retain(|_, t| t.user_id != id);
        self.oauth_clients.retain(|_, app| app.user_id != id);
        Ok(json!({}))
    }
}
