//! The SSRF guard: which destinations callhook may send to.
//!
//! Checked twice. At save, the URL is parsed (the `url` crate normalises numeric and short IPv4
//! forms such as `http://2130706433/` or `http://127.1/` to a plain address) and every address its
//! host resolves to must be public. At connect, [`GuardedResolver`] is the only resolver the HTTP
//! client uses: it resolves, drops forbidden addresses and hands the client exactly the addresses
//! it checked, so a DNS answer that changes between check and connect (rebinding) cannot slip
//! through. IP-literal URLs never reach a resolver, so [`check_url_host`] is run before each send.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use url::{Host, Url};

/// Why an address is not a valid destination, or `None` when it is public.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private network")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xC0) == 64 {
        Some("carrier-grade NAT (100.64.0.0/10)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments (192.0.0.0/24)")
    } else if o[0] == 198 && (o[1] & 0xFE) == 18 {
        Some("benchmarking (198.18.0.0/15)")
    } else if (o[0], o[1], o[2]) == (192, 0, 2)
        || (o[0], o[1], o[2]) == (198, 51, 100)
        || (o[0], o[1], o[2]) == (203, 0, 113)
    {
        Some("documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)")
    } else if (o[0], o[1], o[2]) == (192, 88, 99) {
        Some("6to4 relay anycast (192.88.99.0/24)")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    // Addresses that embed an IPv4 address are judged by that address: IPv4-mapped
    // (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4).or(Some("IPv4-mapped"));
    }
    // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765).
    if s[0..6] == [0, 0, 0, 0, 0xffff, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(v4).or(Some("IPv4-translated"));
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(v4).or(Some("IPv4-compatible"));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return forbidden_v4(v4);
    }
    // Local-use NAT64 (64:ff9b:1::/48): the embedded address sits where the operator's prefix
    // length puts it, so it cannot be judged; no webhook receiver lives there.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    // Teredo (2001::/32) tunnels to an IPv4 address hidden in the address.
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("Teredo (2001::/32)");
    }
    if s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010 {
        return Some("ORCHID (2001:10::/28)");
    }
    if s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020 {
        return Some("ORCHIDv2 (2001:20::/28)");
    }
    if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        return Some("benchmarking (2001:2::/48)");
    }
    if s[0] == 0x100 && s[1..4] == [0, 0, 0] {
        return Some("discard-only (100::/64)");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return forbidden_v4(v4);
    }
    if (s[0] & 0xfe00) == 0xfc00 {
        return Some("unique local (fc00::/7)");
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return Some("link-local");
    }
    if (s[0] & 0xffc0) == 0xfec0 {
        return Some("site-local");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("documentation (2001:db8::/32)");
    }
    None
}

/// What the guard allows; both flags exist for development and tests only.
#[derive(Debug, Clone, Copy, Default)]
pub struct DestinationPolicy {
    pub allow_insecure_http: bool,
    pub allow_private: bool,
}

/// A refused destination, with a message that says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Checks a URL's form: scheme, credentials, host. Does not resolve names.
/// The longest integration URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

pub fn check_url_form(raw: &str, policy: DestinationPolicy) -> Result<Url, Refused> {
    check_url_schemes(raw, policy, ("https", "http"))
}

/// [`check_url_form`] for a destination whose secure and plain schemes are `(secure, plain)`
/// (`("tls", "nats")`): the plain one only where plain http is allowed.
pub fn check_url_schemes(
    raw: &str,
    policy: DestinationPolicy,
    (secure, plain): (&str, &str),
) -> Result<Url, Refused> {
    if raw.len() > MAX_URL_BYTES {
        return Err(Refused(format!(
            "`url` is {} bytes; at most {MAX_URL_BYTES} are accepted",
            raw.len()
        )));
    }
    // The URL parser drops tabs and line breaks silently; a URL that holds any control
    // character (or a space) is refused instead, so what is stored is what was meant.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Refused(
            "`url` contains spaces or control characters; percent-encode them".into(),
        ));
    }
    let url = Url::parse(raw).map_err(|e| Refused(format!("`url` is not a valid URL: {e}")))?;
    if url.port() == Some(0) {
        return Err(Refused("`url` port 0 is not a port to send to".into()));
    }
    match url.scheme() {
        s if s == secure => {}
        s if s == plain && policy.allow_insecure_http => {}
        s if s == plain => {
            return Err(Refused(format!(
                "`url` must use {secure}:// (plain {plain}:// is refused so payloads and secrets are never sent in clear)"
            )))
        }
        other => {
            return Err(Refused(format!(
                "`url` scheme `{other}` is not supported here; use {secure}://"
            )))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused(
            "`url` must not carry credentials; use `secret` or `headers` instead".into(),
        ));
    }
    if url.host().is_none() {
        return Err(Refused("`url` has no host".into()));
    }
    check_url_host(&url, policy)?;
    Ok(url)
}

/// Refuses a URL whose host is an IP literal in a forbidden range.
pub fn check_url_host(url: &Url, policy: DestinationPolicy) -> Result<(), Refused> {
    if policy.allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(Refused(format!("destination `{d}` is loopback")));
            }
            return Ok(());
        }
        None => return Err(Refused("`url` has no host".into())),
    };
    match forbidden_reason(ip) {
        Some(why) => Err(Refused(format!("destination {ip} is refused: {why}"))),
        None => Ok(()),
    }
}

/// A name lookup: host → addresses. Real code uses the system resolver; tests inject answers.
pub type Lookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// The system resolver, as a [`Lookup`].
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

/// Resolves a name and keeps only allowed addresses; an error when none is left.
pub async fn resolve_allowed(
    lookup: &Lookup,
    host: &str,
    policy: DestinationPolicy,
) -> Result<Vec<IpAddr>, ResolveError> {
    let addrs = lookup(host.to_string())
        .await
        .map_err(|e| ResolveError::Dns(format!("could not resolve `{host}`: {e}")))?;
    if addrs.is_empty() {
        return Err(ResolveError::Dns(format!("`{host}` has no addresses")));
    }
    if policy.allow_private {
        return Ok(addrs);
    }
    let mut refused = None;
    let allowed: Vec<IpAddr> = addrs
        .into_iter()
        .filter(|ip| match forbidden_reason(*ip) {
            Some(why) => {
                refused = Some(format!(
                    "`{host}` resolves to {ip}, which is refused: {why}"
                ));
                false
            }
            None => true,
        })
        .collect();
    // A name with any forbidden address is refused whole: an attacker controlling DNS must not
    // be able to mix one public address in to get a private one tried.
    match refused {
        Some(msg) => Err(ResolveError::Refused(msg)),
        None => Ok(allowed),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Refused(String),
}

/// The HTTP client's resolver: checks and pins the addresses it hands out.
#[derive(Clone)]
pub struct GuardedResolver {
    pub lookup: Lookup,
    pub policy: DestinationPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = resolve_allowed(&this.lookup, &host, this.policy).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    #[test]
    fn every_internal_form_of_an_address_is_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://0.0.0.0/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://224.0.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[2002:a00:1::]/",
            "https://localhost/",
            "https://api.localhost/",
        ] {
            assert!(
                check_url_form(url, strict()).is_err(),
                "{url} must be refused"
            );
        }
    }

    #[test]
    fn public_https_urls_pass_and_http_needs_the_flag() {
        assert!(check_url_form("https://93.184.216.34/hook", strict()).is_ok());
        assert!(check_url_form("https://crm.example.com/hooks", strict()).is_ok());
        assert!(check_url_form("http://crm.example.com/hooks", strict()).is_err());
        let dev = DestinationPolicy {
            allow_insecure_http: true,
            allow_private: true,
        };
        assert!(check_url_form("http://127.0.0.1:9/x", dev).is_ok());
        assert!(check_url_form("ftp://crm.example.com/", dev).is_err());
        assert!(check_url_form("https://user:pw@crm.example.com/", strict()).is_err());
    }

    fn fixed(ips: Vec<IpAddr>) -> Lookup {
        Arc::new(move |_h| {
            let ips = ips.clone();
            Box::pin(async move { Ok(ips) })
        })
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_at_connect() {
        let public: IpAddr = "93.184.216.34"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let ok = resolve_allowed(&fixed(vec![public]), "crm.example.com", strict()).await;
        assert!(matches!(ok, Ok(ref v) if v == &vec![public]));
        // The rebinding case: the same name now answers with loopback.
        let rebound = fixed(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let err = resolve_allowed(&rebound, "crm.example.com", strict()).await;
        assert!(matches!(err, Err(ResolveError::Refused(_))));
        // A mixed answer is refused whole.
        let mixed = fixed(vec![public, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
        assert!(resolve_allowed(&mixed, "x.example", strict())
            .await
            .is_err());
    }
}
