//! The `resnet-serve` binary over gRPC, at the HTTP/2 level where Triton's clients cannot go:
//! a body slower than `--body-timeout-s`, a message that claims more than `--max-body`, more
//! slow bodies at once than the server reads, a client that resets its stream, paths that are
//! not the service's. Each gets its gRPC status and message, and the server serves on.
//! (Triton's own clients are the Python tests': serve/tests/test_tritonclient.py.)

mod common;

#[path = "../src/grpc_proto.rs"]
#[allow(dead_code)]
mod grpc_proto;

use bytes::Bytes;
use grpc_proto::model_infer_request::InferInputTensor;
use grpc_proto::{ModelInferRequest, ModelInferResponse, ServerLiveRequest, ServerLiveResponse};
use prost::Message;
use std::time::{Duration, Instant};

use common::Process as Server;

/// One HTTP/2 connection to the server.
async fn connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.unwrap()
}

/// A gRPC message: the uncompressed flag, the big-endian length, the bytes.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend(message);
    out
}

/// Opens a call of `method`, sends `body` (ending the stream if `end`); returns the stream.
fn call(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: &str,
    method: &str,
    body: Vec<u8>,
    end: bool,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let req = http::Request::post(format!("http://{addr}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from(body), end).unwrap();
    (response, send)
}

/// The call's gRPC status code, message and response payload.
async fn finish(response: h2::client::ResponseFuture) -> (u32, String, Vec<u8>) {
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let (parts, mut body) = response.into_parts();
    let mut payload = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        payload.extend_from_slice(&chunk);
    }
    // A trailers-only answer carries the status in its headers.
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    let get = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_string())
    };
    let code = get("grpc-status").expect("no grpc-status").parse().unwrap();
    let message = get("grpc-message").unwrap_or_default();
    let message = percent_decode(&message);
    (code, message, payload)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

const INVALID_ARGUMENT: u32 = 3;
const UNIMPLEMENTED: u32 = 12;
const UNAVAILABLE: u32 = 14;

fn infer_request(value: f32) -> Vec<u8> {
    ModelInferRequest {
        model_name: "digits".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 3, 32, 32],
            ..Default::default()
        }],
        raw_input_contents: vec![value.to_le_bytes().repeat(3072)],
        ..Default::default()
    }
    .encode_to_vec()
}

/// The server still answers: ServerLive, then one inference.
async fn serves_on(addr: &str) {
    let mut client = connect(addr).await;
    let live = ServerLiveRequest {}.encode_to_vec();
    let path = "/inference.GRPCInferenceService/ServerLive";
    let (r, _s) = call(&mut client, addr, path, frame(&live), true);
    let (code, message, payload) = finish(r).await;
    assert_eq!(code, 0, "{message}");
    assert!(ServerLiveResponse::decode(&payload[5..]).unwrap().live);
    let path = "/inference.GRPCInferenceService/ModelInfer";
    let (r, _s) = call(&mut client, addr, path, frame(&infer_request(0.5)), true);
    let (code, message, payload) = finish(r).await;
    assert_eq!(code, 0, "{message}");
    let answer = ModelInferResponse::decode(&payload[5..]).unwrap();
    assert_eq!(answer.outputs[0].shape, [1, 10]);
    assert_eq!(answer.raw_output_contents[0].len(), 40);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn slow_oversized_and_reset_bodies_get_their_status_and_the_server_serves_on() {
    let s = Server::start(
        &[
            "--max-body",
            "200000",
            "--body-timeout-s",
            "1",
            "--max-batch",
            "1",
        ],
        &[],
    );
    let addr = s.grpc.clone();
    runtime().block_on(async {
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        let mut client = connect(&addr).await;
        // A message that claims 4 GB: refused from its 5-byte prefix, nothing allocated.
        let (r, _s) = call(
            &mut client,
            &addr,
            infer,
            vec![0, 0xff, 0xff, 0xff, 0xff],
            false,
        );
        let (code, message, _) = finish(r).await;
        assert_eq!(code, INVALID_ARGUMENT, "{message}");
        assert!(
            message.contains("over the limit of 200000 bytes (--max-body)"),
            "{message}"
        );
        // A body that stops halfway: INVALID_ARGUMENT after --body-timeout-s, not a hang.
        let started = Instant::now();
        let mut half = frame(&infer_request(0.5));
        half.truncate(5000);
        let (r, _s) = call(&mut client, &addr, infer, half.clone(), false);
        let (code, message, _) = finish(r).await;
        assert_eq!(code, INVALID_ARGUMENT, "{message}");
        assert!(message.contains("did not arrive within 1 s"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // Bodies that end short of their message, or before its prefix.
        for (body, text) in [
            (
                half.clone(),
                "ended after 4995 of the 12320 bytes its message claims",
            ),
            (
                vec![0, 0],
                "ended after 2 bytes, before its message's 5-byte gRPC prefix",
            ),
            (vec![], "ended after 0 bytes"),
        ] {
            let (r, _s) = call(&mut client, &addr, infer, body, true);
            let (code, message, _) = finish(r).await;
            assert_eq!(code, INVALID_ARGUMENT, "{message}");
            assert!(message.contains(text), "{message}");
        }
        // More slow bodies at once than the server reads (16 with --max-batch 1): the rest
        // are told to come back (UNAVAILABLE) at once, the others time out.
        let mut calls = Vec::new();
        for _ in 0..24 {
            calls.push(call(&mut client, &addr, infer, half.clone(), false));
        }
        let mut codes = Vec::new();
        for (r, _s) in calls {
            let (code, message, _) = finish(r).await;
            match code {
                UNAVAILABLE => assert!(message.contains("being read already"), "{message}"),
                INVALID_ARGUMENT => assert!(message.contains("did not arrive"), "{message}"),
                other => panic!("{other}: {message}"),
            }
            codes.push(code);
        }
        // 8, unless the machine took a second to take in 24 requests.
        let turned_away = codes.iter().filter(|&&c| c == UNAVAILABLE).count();
        assert!((1..=8).contains(&turned_away), "{codes:?}");
        // A client that resets its stream mid-body.
        let (_r, mut send) = call(&mut client, &addr, infer, half, false);
        send.send_reset(h2::Reason::CANCEL);
        // Not the service, and a method it does not serve.
        for (path, text) in [
            ("/grpc.health.v1.Health/Check", "no such service or method"),
            (
                "/inference.GRPCInferenceService/ModelStatistics",
                "does not implement ModelStatistics",
            ),
        ] {
            let (r, _s) = call(&mut client, &addr, path, frame(&[]), true);
            let (code, message, _) = finish(r).await;
            assert_eq!(code, UNIMPLEMENTED, "{message}");
            assert!(message.contains(text), "{message}");
        }
        serves_on(&addr).await;
    });
}
