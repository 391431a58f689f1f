//! What every listener (the API, the gateway, the SSH door) does alike (docs/contracts.md#limits):
//! it counts connections per client address and in all ([`admission`]), keeps accepting after a
//! descriptor shortage ([`Acceptor`]), and gives a request body a deadline ([`body`]). The actix
//! side of the API's share is [`api`].

mod accept;
pub mod admission;
pub mod api;
pub mod body;

pub use accept::{Acceptor, SHORTAGE_PAUSE};
pub use admission::{Admission, Limits, Slot};

/// The answer written to a connection refused for [`Limits`], in the API's error shape,
/// before it is closed without reading its request (reading would let refused connections
/// pile up for the header timeout).
pub fn refusal() -> String {
    let body = serde_json::json!({ "error": {
        "code": "too_many_connections",
        "message": "too many connections from this address; close some and retry",
    }})
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
