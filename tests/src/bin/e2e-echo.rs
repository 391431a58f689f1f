//! A minimal HTTP server for the gateway benchmark: listens on $PORT (any address: a process
//! guest has its own network, where only $PORT is published) and answers
//! every request with `$GPUSPOT_INSTANCE_ID`, so that the gateway, not the replica, is what
//! is measured (Python's http.server would be the bottleneck on 2 cores).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")?.parse()?;
    let id = Bytes::from(format!("{}\n", std::env::var("GPUSPOT_INSTANCE_ID").unwrap_or_default()));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let id = id.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let id = id.clone();
                    async move { Ok::<_, std::convert::Infallible>(Response::new(Full::new(id))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
