//! fork patch: MQTT 5.0 enhanced authentication [MQTT-4.12]. Upstream
//! refuses every CONNECT with an Authentication Method (0x8C) and every AUTH
//! packet. Here the `ClientEnhancedAuth` hook decides each step: the AUTH
//! exchange of a CONNECT that carries an Authentication Method, and
//! re-authentication on a live connection (AUTH 0x19). With no handler for
//! the hook, upstream's behaviour is kept.

use anyhow::anyhow;
use bytes::Bytes;
use bytestring::ByteString;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::v5::{
    Auth, AuthReasonCode, ConnectAckReason as ConnectAckReasonV5, Packet, PublishAckReason,
};
use crate::context::ServerContext;
use crate::net::v5;
use crate::net::MqttError;
use crate::types::{ConnectAckReason, Id, Reason};
use crate::v3::NoConnack;
use crate::Error;

/// One step of an exchange, as the hook sees it.
#[derive(Debug, Clone)]
pub struct EnhancedAuthRequest {
    pub id: Id,
    /// The Authentication Method of the CONNECT; every AUTH of the exchange
    /// carries the same one [MQTT-4.12.0-5].
    pub method: ByteString,
    /// The client's Authentication Data of this step.
    pub data: Option<Bytes>,
    /// A re-authentication on a live connection (it began with AUTH 0x19).
    pub reauth: bool,
    /// false on the packet that opens an exchange (CONNECT, AUTH 0x19),
    /// true on the client's answers to a challenge (AUTH 0x18).
    pub continued: bool,
}

/// The hook's answer to one step.
#[derive(Debug, Clone)]
pub enum EnhancedAuthStep {
    /// Challenge the client: AUTH 0x18 with this Authentication Data.
    Continue(Option<Bytes>),
    /// Done: CONNACK 0x00 (or AUTH 0x00 for a re-authentication) with this
    /// Authentication Data.
    Success { data: Option<Bytes>, superuser: bool },
    /// Refused: CONNACK with `code` (or DISCONNECT 0x87 for a
    /// re-authentication) and `reason` as its Reason String.
    Fail { code: u8, reason: Option<ByteString> },
}

/// What a completed exchange leaves for the CONNACK.
pub struct Authenticated {
    pub data: Option<Bytes>,
    pub superuser: bool,
}

type Refusal = (ConnectAckReason, Error);

fn refusal(code: ConnectAckReasonV5, e: Error) -> Refusal {
    (ConnectAckReason::V5(code), e)
}

/// The AUTH exchange of a CONNECT with an Authentication Method. `Ok(None)`
/// when nothing handles the hook: the caller refuses the method (0x8C).
pub(crate) async fn handshake<Io>(
    scx: &ServerContext,
    sink: &mut v5::MqttStream<Io>,
    id: &Id,
    method: ByteString,
    mut data: Option<Bytes>,
) -> std::result::Result<Option<Authenticated>, Refusal>
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    let mut continued = false;
    loop {
        let req =
            EnhancedAuthRequest { id: id.clone(), method: method.clone(), data, reauth: false, continued };
        match scx.extends.hook_mgr().client_enhanced_auth(&req).await {
            None if !continued => return Ok(None),
            None => {
                return Err(refusal(
                    ConnectAckReasonV5::NotAuthorized,
                    anyhow!("enhanced authentication ended"),
                ))
            }
            Some(EnhancedAuthStep::Success { data, superuser }) => {
                return Ok(Some(Authenticated { data, superuser }))
            }
            Some(EnhancedAuthStep::Fail { code, reason }) => {
                let code = ConnectAckReasonV5::try_from(code).unwrap_or(ConnectAckReasonV5::NotAuthorized);
                let why =
                    reason.map(|r| r.to_string()).unwrap_or_else(|| "enhanced authentication failed".into());
                return Err(refusal(code, anyhow!(why)));
            }
            Some(EnhancedAuthStep::Continue(challenge)) => {
                let auth = Auth {
                    reason_code: AuthReasonCode::ContinueAuth,
                    auth_method: Some(method.clone()),
                    auth_data: challenge,
                    ..Default::default()
                };
                sink.send_auth(auth)
                    .await
                    .map_err(|e| refusal(ConnectAckReasonV5::UnspecifiedError, e.context(NoConnack)))?;
                // The whole exchange fits in the handshake timeout.
                let left = sink.handshake_deadline.saturating_duration_since(tokio::time::Instant::now());
                match sink.recv(left).await {
                    Ok(Some(Packet::Auth(a)))
                        if a.reason_code == AuthReasonCode::ContinueAuth
                            && a.auth_method.as_ref() == Some(&method) =>
                    {
                        data = a.auth_data;
                        continued = true;
                    }
                    // [MQTT-4.12.0-3] [MQTT-4.12.0-5]
                    Ok(Some(_)) => {
                        return Err(refusal(
                            ConnectAckReasonV5::ProtocolError,
                            anyhow!("expected AUTH 0x18 with the CONNECT's Authentication Method"),
                        ))
                    }
                    Ok(None) | Err(_) => {
                        return Err(refusal(
                            ConnectAckReasonV5::UnspecifiedError,
                            anyhow!("enhanced authentication: no answer").context(NoConnack),
                        ))
                    }
                }
            }
        }
    }
}

/// An AUTH packet on a live connection whose CONNECT negotiated `method`.
/// `reauthenticating` is the connection's state between AUTH 0x19 and the
/// end of that exchange. Returns the AUTH to send, or the reason to end the
/// connection (DISCONNECT 0x87, or 0x82 for a protocol error).
pub(crate) async fn reauth(
    scx: &ServerContext,
    id: &Id,
    method: Option<&ByteString>,
    auth: Auth,
    reauthenticating: &mut bool,
) -> std::result::Result<Auth, Reason> {
    let Some(method) = method else {
        // [MQTT-4.12.0-7] No method was negotiated: AUTH is a protocol error.
        return Err(Reason::ProtocolError(ByteString::from_static(
            "AUTH received but the CONNECT had no Authentication Method",
        )));
    };
    let continued = match auth.reason_code {
        AuthReasonCode::ReAuth if !*reauthenticating => false,
        AuthReasonCode::ContinueAuth if *reauthenticating => true,
        _ => {
            return Err(Reason::ProtocolError(ByteString::from_static("unexpected AUTH reason code")));
        }
    };
    if auth.auth_method.as_ref() != Some(method) {
        // [MQTT-4.12.1-1]
        return Err(Reason::ProtocolError(ByteString::from_static(
            "AUTH with a different Authentication Method than the CONNECT's",
        )));
    }
    let req = EnhancedAuthRequest {
        id: id.clone(),
        method: method.clone(),
        data: auth.auth_data,
        reauth: true,
        continued,
    };
    let (reason_code, data) = match scx.extends.hook_mgr().client_enhanced_auth(&req).await {
        Some(EnhancedAuthStep::Continue(data)) => (AuthReasonCode::ContinueAuth, data),
        Some(EnhancedAuthStep::Success { data, .. }) => (AuthReasonCode::Success, data),
        Some(EnhancedAuthStep::Fail { reason, .. }) => {
            // [MQTT-4.12.1-2] DISCONNECT with a reason code, and close.
            let why = reason.unwrap_or_else(|| ByteString::from_static("re-authentication failed"));
            return Err(Reason::MqttError(MqttError::PublishAckReason(PublishAckReason::NotAuthorized, why)));
        }
        None => {
            return Err(Reason::MqttError(MqttError::PublishAckReason(
                PublishAckReason::NotAuthorized,
                ByteString::from_static("re-authentication is not available"),
            )))
        }
    };
    *reauthenticating = reason_code == AuthReasonCode::ContinueAuth;
    Ok(Auth { reason_code, auth_method: Some(method.clone()), auth_data: data, ..Default::default() })
}
