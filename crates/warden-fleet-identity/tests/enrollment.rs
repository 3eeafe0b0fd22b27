//! Every refusal of the enrollment exchange, each with its own typed error. No server: these
//! are the controller's checks before any credential exists (the minted credentials are
//! exercised against a real server in `live.rs`).

use data_encoding::BASE64URL_NOPAD as B64;
use warden_fleet_identity::enroll::{
    CHALLENGE_LIFETIME, ENROLLMENT_TOKEN_LIFETIME, MAX_ENROLLMENT_TOKEN_LIFETIME,
};
use warden_fleet_identity::{
    AgentKey, DenyList, EnrollError, FleetAuthority, SpentTokens, TenantId, jwt,
};

const NOW: i64 = 1_800_000_000;

struct Controller {
    authority: FleetAuthority,
    spent: SpentTokens,
    deny: DenyList,
    acme: TenantId,
    globex: TenantId,
}

fn controller() -> Controller {
    let mut authority = FleetAuthority::generate();
    let acme = TenantId::new("acme").expect("tenant");
    let globex = TenantId::new("globex").expect("tenant");
    authority.add_tenant(&acme).expect("acme");
    authority.add_tenant(&globex).expect("globex");
    Controller {
        authority,
        spent: SpentTokens::new(),
        deny: DenyList::new(),
        acme,
        globex,
    }
}

fn token(c: &Controller, tenant: &TenantId) -> String {
    c.authority
        .issue_enrollment_token(tenant, &["role=db".into()], ENROLLMENT_TOKEN_LIFETIME, NOW)
        .expect("token")
        .token
}

#[test]
fn an_agent_enrolls_once_with_a_valid_token_and_its_signed_nonce() {
    let mut c = controller();
    let key = AgentKey::generate();
    let request = key.request(&token(&c, &c.acme), &c.acme, "db-1");
    let pending = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, NOW)
        .expect("begin");
    let answer = key.answer(&pending.challenge).expect("answer");
    let enrolled = c
        .authority
        .complete_enrollment(&pending, &answer, &mut c.spent, &c.deny, NOW + 1)
        .expect("complete");
    assert_eq!(enrolled.jwt.agent, key.id());
    assert_eq!(enrolled.jwt.tenant, c.acme);
    assert_eq!(enrolled.tags, vec!["role=db".to_string()]);
    let claims: jwt::Claims<jwt::User> = jwt::decode(&enrolled.jwt.jwt).expect("user jwt");
    assert_eq!(claims.subject, key.id().as_str());
    assert_eq!(claims.name, "db-1");

    // The same answer again, or a new request with the same token: reused.
    let again = c
        .authority
        .complete_enrollment(&pending, &answer, &mut c.spent, &c.deny, NOW + 2);
    assert!(
        matches!(again, Err(EnrollError::TokenReused { .. })),
        "{again:?}"
    );
    let other = AgentKey::generate();
    let reused = c.authority.begin_enrollment(
        &other.request(&request.token, &c.acme, "db-2"),
        &c.spent,
        &c.deny,
        NOW + 2,
    );
    assert!(
        matches!(reused, Err(EnrollError::TokenReused { .. })),
        "{reused:?}"
    );
}

#[test]
fn an_expired_token_is_refused() {
    let c = controller();
    let key = AgentKey::generate();
    let request = key.request(&token(&c, &c.acme), &c.acme, "late");
    let late = NOW + ENROLLMENT_TOKEN_LIFETIME + 1;
    let refused = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, late);
    assert!(
        matches!(refused, Err(EnrollError::TokenExpired { expired_at, now })
            if expired_at == NOW + ENROLLMENT_TOKEN_LIFETIME && now == late),
        "{refused:?}"
    );
    // Valid up to and including its last second.
    assert!(
        c.authority
            .begin_enrollment(&request, &c.spent, &c.deny, late - 1)
            .is_ok()
    );
    // And a token that expires between the challenge and the answer is refused too.
    let mut c = c;
    let pending = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, late - 1)
        .expect("begin");
    let answer = key.answer(&pending.challenge).expect("answer");
    let refused = c
        .authority
        .complete_enrollment(&pending, &answer, &mut c.spent, &c.deny, late);
    assert!(
        matches!(refused, Err(EnrollError::TokenExpired { .. })),
        "{refused:?}"
    );
}

#[test]
fn a_wrong_nonce_signature_is_refused_and_does_not_spend_the_token() {
    let mut c = controller();
    let key = AgentKey::generate();
    let request = key.request(&token(&c, &c.acme), &c.acme, "host");
    let pending = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, NOW)
        .expect("begin");
    let good = key.answer(&pending.challenge).expect("answer");

    // Signed by another key (someone presenting a public key it does not hold).
    let impostor = AgentKey::generate();
    let mut challenge_for_impostor = pending.challenge.clone();
    challenge_for_impostor.agent = impostor.id();
    let mut forged = impostor.answer(&challenge_for_impostor).expect("sign");
    forged.agent = good.agent.clone();
    let refused = c
        .authority
        .complete_enrollment(&pending, &forged, &mut c.spent, &c.deny, NOW);
    assert!(
        matches!(refused, Err(EnrollError::BadNonceSignature)),
        "{refused:?}"
    );

    // The right key over another nonce, a corrupted signature, garbage.
    let mut other_nonce = pending.challenge.clone();
    other_nonce.nonce = "AAAA".into();
    let mut replayed = key.answer(&other_nonce).expect("sign");
    replayed.nonce = good.nonce.clone();
    let mut flipped = good.clone();
    flipped.signature = flip_first_char(&good.signature);
    let mut garbage = good.clone();
    garbage.signature = "not base64 !".into();
    for bad in [replayed, flipped, garbage] {
        let refused = c
            .authority
            .complete_enrollment(&pending, &bad, &mut c.spent, &c.deny, NOW);
        assert!(
            matches!(refused, Err(EnrollError::BadNonceSignature)),
            "{refused:?}"
        );
    }
    assert!(c.spent.is_empty(), "a refused answer spent the token");

    // An answer naming another nonce or key than the challenge's.
    let mut mismatched = good.clone();
    mismatched.nonce = "AAAA".into();
    let refused =
        c.authority
            .complete_enrollment(&pending, &mismatched, &mut c.spent, &c.deny, NOW);
    assert!(
        matches!(refused, Err(EnrollError::ChallengeMismatch)),
        "{refused:?}"
    );

    // Too late to answer.
    let refused = c.authority.complete_enrollment(
        &pending,
        &good,
        &mut c.spent,
        &c.deny,
        NOW + CHALLENGE_LIFETIME + 1,
    );
    assert!(
        matches!(refused, Err(EnrollError::ChallengeExpired { .. })),
        "{refused:?}"
    );

    // The genuine answer still works.
    c.authority
        .complete_enrollment(&pending, &good, &mut c.spent, &c.deny, NOW)
        .expect("complete");
}

fn flip_first_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn tokens_are_bound_to_their_tenant_and_their_issuer() {
    let c = controller();
    let key = AgentKey::generate();

    // A globex token on a machine configured for acme.
    let request = key.request(&token(&c, &c.globex), &c.acme, "host");
    let refused = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, NOW);
    assert!(
        matches!(&refused, Err(EnrollError::WrongTenant { token, requested })
            if token == &c.globex && requested == "acme"),
        "{refused:?}"
    );

    // A token from another controller, and one for a tenant this controller lacks.
    let mut stranger = FleetAuthority::generate();
    stranger.add_tenant(&c.acme).expect("acme");
    let foreign = stranger
        .issue_enrollment_token(&c.acme, &[], ENROLLMENT_TOKEN_LIFETIME, NOW)
        .expect("token");
    let refused = c.authority.begin_enrollment(
        &key.request(&foreign.token, &c.acme, "host"),
        &c.spent,
        &c.deny,
        NOW,
    );
    assert!(
        matches!(refused, Err(EnrollError::TokenSignature)),
        "{refused:?}"
    );

    // A token edited to name another tenant no longer verifies.
    let genuine = token(&c, &c.acme);
    let parts: Vec<&str> = genuine.split('.').collect();
    let body = String::from_utf8(B64.decode(parts[1].as_bytes()).expect("base64url"))
        .expect("utf8")
        .replace("\"acme\"", "\"globex\"");
    let edited = format!("{}.{}.{}", parts[0], B64.encode(body.as_bytes()), parts[2]);
    let refused = c.authority.begin_enrollment(
        &key.request(&edited, &c.globex, "host"),
        &c.spent,
        &c.deny,
        NOW,
    );
    assert!(
        matches!(refused, Err(EnrollError::TokenSignature)),
        "{refused:?}"
    );

    // Not a token at all, and a NATS user JWT presented as one.
    for junk in ["", "a.b.c", "eyJ.eyJ.sig"] {
        let refused = c.authority.begin_enrollment(
            &key.request(junk, &c.acme, "host"),
            &c.spent,
            &c.deny,
            NOW,
        );
        assert!(
            matches!(refused, Err(EnrollError::TokenMalformed(_))),
            "{junk}: {refused:?}"
        );
    }
    let user_jwt = c
        .authority
        .agent_jwt(&c.acme, &key.id(), "host", &c.deny, NOW)
        .expect("jwt");
    let refused = c.authority.begin_enrollment(
        &key.request(&user_jwt.jwt, &c.acme, "host"),
        &c.spent,
        &c.deny,
        NOW,
    );
    assert!(
        matches!(refused, Err(EnrollError::TokenMalformed(_))),
        "{refused:?}"
    );
}

#[test]
fn bad_keys_revoked_keys_and_bad_issuance_are_refused() {
    let mut c = controller();
    let token = token(&c, &c.acme);
    let key = AgentKey::generate();
    let mut request = key.request(&token, &c.acme, "host");
    for bad in [
        "",
        "not-a-key",
        &c.authority.tenant_account(&c.acme).expect("acme"),
    ] {
        request.agent = bad.to_string();
        let refused = c
            .authority
            .begin_enrollment(&request, &c.spent, &c.deny, NOW);
        assert!(
            matches!(refused, Err(EnrollError::BadAgentKey(_))),
            "{bad}: {refused:?}"
        );
    }
    c.deny.revoke(&c.acme, &key.id(), NOW - 10, "test");
    let refused = c.authority.begin_enrollment(
        &key.request(&token, &c.acme, "host"),
        &c.spent,
        &c.deny,
        NOW,
    );
    assert!(
        matches!(refused, Err(EnrollError::AgentRevoked(_))),
        "{refused:?}"
    );

    let unknown = TenantId::new("initech").expect("tenant");
    assert!(matches!(
        c.authority
            .issue_enrollment_token(&unknown, &[], ENROLLMENT_TOKEN_LIFETIME, NOW),
        Err(EnrollError::UnknownTenant(_))
    ));
    for lifetime in [0, -1, MAX_ENROLLMENT_TOKEN_LIFETIME + 1] {
        assert!(matches!(
            c.authority
                .issue_enrollment_token(&c.acme, &[], lifetime, NOW),
            Err(EnrollError::LifetimeOutOfRange { .. })
        ));
    }
    for tags in [
        vec![String::new()],
        vec!["a\nb".into()],
        vec!["t".into(); 33],
    ] {
        assert!(matches!(
            c.authority
                .issue_enrollment_token(&c.acme, &tags, ENROLLMENT_TOKEN_LIFETIME, NOW),
            Err(EnrollError::InvalidTag(_))
        ));
    }
    // A challenge addressed to another key is not signed.
    let other = AgentKey::generate();
    let pending = c
        .authority
        .begin_enrollment(
            &other.request(&token, &c.acme, "host"),
            &c.spent,
            &c.deny,
            NOW,
        )
        .expect("begin");
    assert!(matches!(
        key.answer(&pending.challenge),
        Err(EnrollError::ChallengeMismatch)
    ));
}

#[test]
fn spent_tokens_are_forgotten_only_once_expired() {
    let mut c = controller();
    let key = AgentKey::generate();
    let request = key.request(&token(&c, &c.acme), &c.acme, "host");
    let pending = c
        .authority
        .begin_enrollment(&request, &c.spent, &c.deny, NOW)
        .expect("begin");
    let answer = key.answer(&pending.challenge).expect("answer");
    c.authority
        .complete_enrollment(&pending, &answer, &mut c.spent, &c.deny, NOW)
        .expect("complete");
    // Persisted and restored (a controller restart), still spent.
    let json = serde_json::to_string(&c.spent).expect("json");
    let mut spent: SpentTokens = serde_json::from_str(&json).expect("parse");
    spent.prune(NOW + ENROLLMENT_TOKEN_LIFETIME);
    assert!(spent.is_spent(&pending.challenge.token_id));
    spent.prune(NOW + ENROLLMENT_TOKEN_LIFETIME + 1);
    assert!(spent.is_empty());
}
