//! `Authorization: Bearer …` (RFC 6750 §2.1), read the same way by the API and userinfo: the
//! scheme is case-insensitive (RFC 7235 §2.1), the token is trimmed and must not be empty.
use actix_web::HttpRequest;

pub fn token(req: &HttpRequest) -> Option<&str> {
    let header = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, rest) = header.split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    #[test]
    fn scheme_is_case_insensitive_and_token_trimmed() {
        for (h, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc ", Some("abc")),
            ("BEARER  abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ] {
            let req = TestRequest::default()
                .insert_header(("Authorization", h))
                .to_http_request();
            assert_eq!(super::token(&req), want, "{h:?}");
        }
        assert_eq!(
            super::token(&TestRequest::default().to_http_request()),
            None
        );
    }
}
