//! Partners (resellers), tenants (the platform's customers) and API tokens.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Origins whose pages may show the console of this partner's tenants in a frame (the
    /// platform's own admin UI), beside the node's `CALLHOOK_FRAME_ANCESTORS`.
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
    /// What this partner's tenants see in the console instead of callhook's look.
    #[serde(default)]
    pub brand: Brand,
}

/// A partner's look in its tenants' console: a product name, an accent colour, a logo.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Brand {
    /// Shown in the console's header and title, e.g. "Example PBX Webhooks" (1–60 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `#rrggbb`, for links and buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub accent: Option<String>,
    /// The uploaded logo's media type (PUT /v1/partners/{pid}/logo); none without a logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_type: Option<String>,
}

/// The largest logo accepted.
pub const MAX_LOGO_BYTES: usize = 64 * 1024;

/// Checks a brand's name and accent colour.
pub fn check_brand(name: Option<&str>, accent: Option<&str>) -> Result<(), String> {
    if let Some(n) = name {
        check_label("brand.name", n)?;
        if n.chars().count() > 60 {
            return Err("`brand.name` is at most 60 characters".into());
        }
    }
    if let Some(a) = accent {
        let hex = a.strip_prefix('#').unwrap_or_default();
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`brand.accent` must be a colour such as #1f5fbf, not `{a}`"
            ));
        }
    }
    Ok(())
}

/// The media type of a logo, told from its first bytes (never from what the client says):
/// PNG, JPEG or WebP. SVG is refused: it can carry script.
pub fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The most origins one frame-ancestors list may name.
pub const MAX_FRAME_ANCESTORS: usize = 20;

/// Checks a list of origins allowed to frame the console: each `https://host[:port]` (plain
/// http only for a loopback host, for development), no path, query or credentials; returned in
/// their serialised form, without repeats.
pub fn check_frame_ancestors(list: &[String]) -> Result<Vec<String>, String> {
    if list.len() > MAX_FRAME_ANCESTORS {
        return Err(format!(
            "`frame_ancestors` names at most {MAX_FRAME_ANCESTORS} origins"
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in list {
        let bad = |why: &str| {
            format!("`frame_ancestors`: `{raw}` {why}; write an origin such as https://admin.example.com")
        };
        let url = url::Url::parse(raw).map_err(|_| bad("is not an origin"))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("must be https (http only for localhost)")),
        }
        // Only a plain host name or address: `*`, `;`, quotes and the like pass the URL
        // parser but would widen or break the Content-Security-Policy they end up in.
        let plain_host = url.host_str().is_some_and(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        });
        if !plain_host
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || raw.len() > 200
        {
            return Err(bad("must be a scheme, a host and a port only"));
        }
        let origin = url.origin().ascii_serialization();
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub partner_id: Option<String>,
    /// Licence limit on integrations; `None` means unlimited.
    pub max_integrations: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, across tenants and partners.
    Operator,
    /// Posts events and recordings (for one tenant when the token names one).
    Ingest,
    /// Its partner's integrations and reconciliation, and its partner's tenants.
    PartnerAdmin,
    /// Its tenant's integrations (the "superadmin" of a customer account).
    TenantAdmin,
    /// Reads its tenant's integrations and deliveries.
    TenantViewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Ingest => "ingest",
            Role::PartnerAdmin => "partner_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantViewer => "tenant_viewer",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Operator,
            Role::Ingest,
            Role::PartnerAdmin,
            Role::TenantAdmin,
            Role::TenantViewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A stored token: only the SHA-256 of the token is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub hash: [u8; 32],
    pub role: Role,
    pub tenant_id: Option<String>,
    pub partner_id: Option<String>,
    pub name: String,
    pub created_at: i64,
}

/// A name people give (tenant, partner, integration, token): trimmed, 1–200 characters, no
/// control characters (a NUL, CR or LF in a name breaks logs, headers and CSV exports).
pub fn check_label(field: &str, name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(format!(
            "`{field}` must be 1–200 characters, without control characters (tabs, line breaks, NUL)"
        ));
    }
    Ok(name.to_string())
}

/// Tenant and partner ids appear in URLs and events: a short slug keeps them unambiguous.
pub fn check_slug(field: &str, id: &str) -> Result<(), String> {
    // Ids become path segments (recording files live under the tenant's id), so they start with
    // a letter or digit: never `.` or `..`.
    let ok = id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{field}` must be 1–64 characters of letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}
