//! rmqtt-net 0010-tls-pem: TLS material given as bytes. Neither `Debug` of
//! the builder nor an error of a listener built from bad material shows the
//! key.

use rmqtt_net::{Builder, TlsPem};

/// Not a real key, but shaped as one: a PEM block with a base64 body.
const BODY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRETAA";

fn pem(label: &str, body: &str) -> Vec<u8> {
  format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n").into_bytes()
}

#[test]
fn debug_hides_the_key() {
  let b = Builder::new().tls_pem(Some(TlsPem {
    cert: pem("CERTIFICATE", "AAAA"),
    key: pem("PRIVATE KEY", BODY),
    client_ca: None,
  }));
  let shown = format!("{b:?}");
  assert!(shown.contains("TlsPem"), "{shown}");
  assert!(!shown.contains("SECRET"), "{shown}");
}

#[tokio::test]
async fn errors_quote_no_material() {
  let cases = [
    (pem("CERTIFICATE", BODY), pem("PRIVATE KEY", BODY), "error"),
    (
      pem("PRIVATE KEY", BODY),
      pem("PRIVATE KEY", BODY),
      "no PEM certificate",
    ),
    (
      pem("CERTIFICATE", "!!!!"),
      pem("PRIVATE KEY", BODY),
      "not valid PEM",
    ),
  ];
  for (cert, key, expected) in cases {
    let err = Builder::new()
      .laddr(([127, 0, 0, 1], 0).into())
      .tls_pem(Some(TlsPem {
        cert,
        key,
        client_ca: None,
      }))
      .bind()
      .and_then(|l| l.tls())
      .err()
      .expect("bad material must fail");
    let shown = format!("{err:#}");
    assert!(shown.contains(expected), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
  }
}
