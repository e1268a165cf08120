//! Argon2 password hashes: making them, checking a users file's PHC strings
//! up front, and verifying a password (a blocking call: callers run it on
//! tokio's blocking pool).

use std::fmt;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, PasswordVerifier, Salt};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// Largest memory cost a users file may ask for, in KiB (1 GiB). Argon2
/// allocates all of it on every login, so a typo such as an extra digit
/// would otherwise take the server down at the first login instead of
/// being reported when the file is loaded.
pub const MAX_M_COST_KIB: u32 = 1 << 20;
/// Largest time cost (passes over memory) a users file may ask for.
pub const MAX_T_COST: u32 = 64;

/// Salt length in bytes (the PHC recommendation, and argon2's default).
const SALT_LEN: usize = 16;

/// Hashes `password` with argon2id and its recommended parameters
/// (m=19456 KiB, t=2, p=1) and a random 16-byte salt from the operating
/// system, returning the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`)
/// to store in a users file. Slow on purpose (tens of milliseconds).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hash_password_with_params(password.as_bytes(), Params::DEFAULT)
}

/// [`hash_password`] with chosen parameters; tests use cheap ones.
pub(crate) fn hash_password_with_params(password: &[u8], params: Params) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(|e| AuthError::Backend(format!("no random salt: {e}")))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| AuthError::Backend(format!("salt encoding: {e}")))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Backend(format!("argon2: {e}")))
}

/// Why a users file's `password` value cannot be used. The value itself
/// is never included: it may be a plaintext password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashProblem {
    /// Not a PHC string at all, most likely a plaintext password.
    NotPhcString,
    /// A PHC string of another algorithm (bcrypt, sha-crypt, ...).
    NotArgon2 { algorithm: String },
    /// Starts like argon2 but does not parse, or has no salt or output.
    Malformed(String),
    /// Parameters above [`MAX_M_COST_KIB`] or [`MAX_T_COST`].
    TooExpensive { m_cost: u32, t_cost: u32 },
}

impl fmt::Display for HashProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashProblem::NotPhcString => f.write_str(
                "password is not an argon2 PHC string (\"$argon2id$v=19$...\"); \
                 plaintext passwords are refused: make a hash with `ferroftp user add`",
            ),
            HashProblem::NotArgon2 { algorithm } => write!(
                f,
                "password is a {algorithm:?} hash; only argon2 (argon2id, argon2i, argon2d) \
                 hashes are supported"
            ),
            HashProblem::Malformed(why) => {
                write!(f, "password is not a valid argon2 PHC string: {why}")
            }
            HashProblem::TooExpensive { m_cost, t_cost } => write!(
                f,
                "password hash parameters m={m_cost},t={t_cost} are too expensive \
                 (at most m={MAX_M_COST_KIB},t={MAX_T_COST})"
            ),
        }
    }
}

/// Checks that `phc` is an argon2 PHC string that [`verify_password`] can
/// use, so that a bad entry is reported at load time rather than showing
/// up as a user who can never log in.
pub(crate) fn check_phc(phc: &str) -> Result<(), HashProblem> {
    let hash = match PasswordHash::new(phc) {
        Ok(hash) => hash,
        Err(e) if phc.starts_with("$argon2") => return Err(HashProblem::Malformed(e.to_string())),
        Err(_) => return Err(HashProblem::NotPhcString),
    };
    Algorithm::try_from(hash.algorithm).map_err(|_| HashProblem::NotArgon2 {
        algorithm: hash.algorithm.to_string(),
    })?;
    if let Some(version) = hash.version {
        Version::try_from(version).map_err(|e| HashProblem::Malformed(e.to_string()))?;
    }
    let params = Params::try_from(&hash).map_err(|e| HashProblem::Malformed(e.to_string()))?;
    if hash.salt.is_none() {
        return Err(HashProblem::Malformed("no salt".into()));
    }
    if hash.hash.is_none() {
        return Err(HashProblem::Malformed("no hash output".into()));
    }
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > MAX_T_COST {
        return Err(HashProblem::TooExpensive {
            m_cost: params.m_cost(),
            t_cost: params.t_cost(),
        });
    }
    Ok(())
}

/// Verifies `password` against a PHC string already accepted by
/// [`check_phc`]. Blocking and CPU-heavy. `Ok(false)` is a wrong password;
/// `Err` is only for a hash that cannot be used at all.
pub(crate) fn verify_password(phc: &str, password: &[u8]) -> Result<bool, AuthError> {
    let hash = PasswordHash::new(phc).map_err(|e| AuthError::Backend(format!("stored hash: {e}")))?;
    // `Argon2::default()` only supplies the code: algorithm, version and
    // parameters all come from the stored hash.
    match Argon2::default().verify_password(password, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(AuthError::Backend(format!("argon2: {e}"))),
    }
}

/// A PHC string with the algorithm, version and parameters of `like` (a
/// stored user hash) but a fixed salt and an all-zero output: verifying
/// against it costs exactly what verifying a real user costs, which is what
/// a login for an unknown name spends so that timing does not tell which
/// names exist. Falls back to the default parameters if `like` does not
/// parse.
pub(crate) fn dummy_phc_like(like: Option<&str>) -> String {
    // 16 bytes, base64 without padding, as in a real hash.
    const SALT_B64: &str = "ZmVycm9mdHAtZHVtbXktc2E";
    let salt = Salt::from_b64(SALT_B64).expect("constant salt is valid base64");
    let parsed = like.and_then(|phc| PasswordHash::new(phc).ok());
    let (algorithm, version, params) = match &parsed {
        Some(hash) => match (Params::try_from(hash), hash.version) {
            (Ok(params), version) => (hash.algorithm, version, params),
            (Err(_), _) => (Algorithm::Argon2id.ident(), None, Params::DEFAULT),
        },
        None => (Algorithm::Argon2id.ident(), None, Params::DEFAULT),
    };
    let output_len = parsed
        .as_ref()
        .and_then(|h| h.hash.map(|o| o.len()))
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let zeros = vec![0u8; output_len];
    let output = Output::new(&zeros).expect("output length taken from a valid hash");
    let dummy = PasswordHash {
        algorithm,
        version: version.or(Some(Version::V0x13.into())),
        params: (&params).try_into().expect("valid params encode"),
        salt: Some(salt),
        hash: Some(output),
    };
    dummy.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cheapest parameters argon2 accepts: tests stay fast, and the
    /// code paths are the same as with the real ones.
    pub(crate) fn cheap_params() -> Params {
        Params::new(Params::MIN_M_COST, 1, 1, None).unwrap()
    }

    pub(crate) fn cheap_hash(password: &str) -> String {
        hash_password_with_params(password.as_bytes(), cheap_params()).unwrap()
    }

    #[test]
    fn production_hash_uses_recommended_argon2id_params() {
        let phc = hash_password("secret").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, b"secret").unwrap());
        assert!(!verify_password(&phc, b"Secret").unwrap());
    }

    #[test]
    fn salts_are_random() {
        assert_ne!(cheap_hash("same"), cheap_hash("same"));
    }

    #[test]
    fn verify_uses_the_stored_parameters() {
        let phc = cheap_hash("pw");
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify_password(&phc, b"pw").unwrap());
        assert!(!verify_password(&phc, b"").unwrap());
    }

    #[test]
    fn check_phc_sorts_out_bad_values() {
        assert_eq!(check_phc(&cheap_hash("x")), Ok(()));
        assert_eq!(check_phc("hunter2"), Err(HashProblem::NotPhcString));
        assert_eq!(check_phc(""), Err(HashProblem::NotPhcString));
        assert_eq!(
            check_phc("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
            Err(HashProblem::NotPhcString),
            "bcrypt's format is not PHC"
        );
        assert!(matches!(
            check_phc("$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"),
            Err(HashProblem::NotArgon2 { .. })
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=19456,t=2,p=1$"),
            Err(HashProblem::Malformed(_))
        ));
        assert!(matches!(
            check_phc("$argon2id$v=19$m=1,t=2,p=1$ZmVycm9mdHAtZHVtbXktc2E$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(HashProblem::Malformed(_))
        ));
        assert!(matches!(
            check_phc(
                "$argon2id$v=19$m=4194304,t=2,p=1$ZmVycm9mdHAtZHVtbXktc2E$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            ),
            Err(HashProblem::TooExpensive { .. })
        ));
    }

    #[test]
    fn dummy_has_the_same_shape_and_never_matches() {
        let real = cheap_hash("pw");
        let dummy = dummy_phc_like(Some(&real));
        assert_eq!(check_phc(&dummy), Ok(()));
        assert!(dummy.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{dummy}");
        assert!(!verify_password(&dummy, b"pw").unwrap());

        let default = dummy_phc_like(None);
        assert_eq!(check_phc(&default), Ok(()));
        assert!(default.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{default}");
    }
}
