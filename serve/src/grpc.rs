//! The gRPC transport: `inference.GRPCInferenceService` on tonic's HTTP/2 server. The service's
//! dispatch is written here rather than generated: one path per method, each decoded with
//! prost (`grpc_proto.rs`) and answered through the same checks and inference as HTTP
//! (`protocol.rs`, `app.rs`).
//!
//! Codes: INVALID_ARGUMENT for a bad request (also a message that is not protobuf, a body over
//! `--max-body` or one slower than `--body-timeout-s`), NOT_FOUND for an unknown model or
//! version, UNAVAILABLE when the queue is full, too many bodies are being read, the device was
//! lost or the server is stopping, UNIMPLEMENTED for the protocol's methods we do not serve.

use crate::app::{App, Refusal};
use crate::batcher::Kind;
use crate::grpc_proto::model_infer_request::InferInputTensor;
use crate::grpc_proto::model_infer_response::InferOutputTensor;
use crate::grpc_proto::model_metadata_response::TensorMetadata;
use crate::grpc_proto::*;
use crate::protocol::{self, Data, Prepared, Spec};
use axum::http;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::body::Body;
use tonic::codec::{DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The service's methods live under this path.
const PREFIX: &str = "/inference.GRPCInferenceService/";

/// The methods served, for UNIMPLEMENTED's message.
const METHODS: &str = "ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, \
                       ModelConfig and ModelInfer";

fn status(r: Refusal) -> Status {
    match r {
        Refusal::Bad(m) => Status::invalid_argument(m),
        Refusal::NotFound(m) => Status::not_found(m),
        Refusal::Unavailable(m) => Status::unavailable(m),
        Refusal::Internal(m) => Status::internal(m),
    }
}

/// `inference.GRPCInferenceService`, as a tower service for tonic's server.
#[derive(Clone)]
pub struct GrpcService(pub Arc<App>);

impl tower_service::Service<http::Request<Body>> for GrpcService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let app = self.0.clone();
        Box::pin(async move { Ok(route(app, req).await) })
    }
}

type Reply<T> = Result<tonic::Response<T>, Status>;

async fn route(app: Arc<App>, mut req: http::Request<Body>) -> http::Response<Body> {
    let arrived = Instant::now();
    let path = req.uri().path().to_string();
    let Some(method) = path.strip_prefix(PREFIX) else {
        return Status::unimplemented(format!(
            "no such service or method: {path}; this server serves {PREFIX}{{{METHODS}}}"
        ))
        .into_http();
    };
    let a = app.clone();
    match method {
        "ServerLive" => {
            unary(&app, req, |_: tonic::Request<ServerLiveRequest>| async {
                Ok(tonic::Response::new(ServerLiveResponse { live: true }))
            })
            .await
        }
        "ServerReady" => {
            unary(
                &app,
                req,
                move |_: tonic::Request<ServerReadyRequest>| async move {
                    Ok(tonic::Response::new(ServerReadyResponse {
                        ready: a.ready(),
                    }))
                },
            )
            .await
        }
        "ModelReady" => {
            unary(
                &app,
                req,
                move |r: tonic::Request<ModelReadyRequest>| async move {
                    let r = r.into_inner();
                    a.kind(&r.name).map_err(status)?;
                    a.version(&r.version).map_err(status)?;
                    Ok(tonic::Response::new(ModelReadyResponse {
                        ready: a.ready(),
                    }))
                },
            )
            .await
        }
        "ServerMetadata" => {
            unary(
                &app,
                req,
                |_: tonic::Request<ServerMetadataRequest>| async {
                    Ok(tonic::Response::new(ServerMetadataResponse {
                        name: protocol::SERVER_NAME.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        extensions: protocol::EXTENSIONS.map(String::from).to_vec(),
                    }))
                },
            )
            .await
        }
        "ModelMetadata" => {
            unary(
                &app,
                req,
                move |r: tonic::Request<ModelMetadataRequest>| async move {
                    model_metadata(&a, r.into_inner())
                },
            )
            .await
        }
        "ModelConfig" => {
            unary(
                &app,
                req,
                move |r: tonic::Request<ModelConfigRequest>| async move {
                    model_config(&a, r.into_inner())
                },
            )
            .await
        }
        "ModelInfer" => {
            // Admission, as over HTTP: a bounded number of bodies in memory at once. The
            // permit rides in the request's extensions until the handler has parsed it.
            let permit = match app.admit() {
                Ok(p) => p,
                Err(r) => return status(r).into_http(),
            };
            req.extensions_mut()
                .insert(Reading(Arc::new(Mutex::new(Some(permit)))));
            unary(&app, req, move |r: tonic::Request<ModelInferRequest>| {
                model_infer(a, arrived, r)
            })
            .await
        }
        other => Status::unimplemented(format!(
            "resnet-serve does not implement {other}; it serves {METHODS}"
        ))
        .into_http(),
    }
}

/// One unary call: the body (bounded by `--max-body` and `--body-timeout-s`) decoded as
/// `Req`, `handler`'s answer encoded.
async fn unary<Req, Resp, F, Fut>(
    app: &App,
    req: http::Request<Body>,
    handler: F,
) -> http::Response<Body>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Reply<Resp>> + Send + 'static,
{
    let mut grpc = tonic::server::Grpc::new(Codec::<Resp, Req>(PhantomData))
        .apply_max_message_size_config(Some(app.max_body), Some(usize::MAX));
    let req = req.map(|body| Bounded::new(body, app.max_body, app.body_timeout));
    grpc.unary(Handler(Some(handler)), req).await
}

/// A handler as tonic's unary service (called once per request).
struct Handler<F>(Option<F>);

impl<Req, Resp, F, Fut> tower_service::Service<tonic::Request<Req>> for Handler<F>
where
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Reply<Resp>>,
{
    type Response = tonic::Response<Resp>;
    type Error = Status;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Req>) -> Fut {
        (self.0.take().expect("a unary handler is called once"))(req)
    }
}

/// prost messages as gRPC payloads; a payload that is not the message is INVALID_ARGUMENT.
struct Codec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> tonic::codec::Codec for Codec<E, D>
where
    E: Message + Send + 'static,
    D: Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = Codec<E, D>;
    type Decoder = Codec<E, D>;

    fn encoder(&mut self) -> Self::Encoder {
        Codec(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Codec(PhantomData)
    }
}

impl<E: Message, D> Encoder for Codec<E, D> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<E, D: Message + Default> Decoder for Codec<E, D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        D::decode(src).map(Some).map_err(|e| {
            let name = std::any::type_name::<D>().rsplit("::").next().unwrap_or("");
            Status::invalid_argument(format!(
                "the request is not a well-formed inference.{name} protobuf message: {e}"
            ))
        })
    }
}

/// A request body held to `--max-body` bytes and `--body-timeout-s` seconds, answering
/// INVALID_ARGUMENT past either (as HTTP answers 400), before tonic buffers it.
struct Bounded {
    inner: Body,
    limit: usize,
    seen: usize,
    /// The gRPC message prefix (compression flag, big-endian u32 length) as it arrives.
    prefix: Vec<u8>,
    /// The message length the prefix declares, once it is all there.
    claimed: Option<usize>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    done: bool,
}

impl Bounded {
    fn new(inner: Body, limit: usize, timeout: Duration) -> Bounded {
        Bounded {
            inner,
            limit,
            seen: 0,
            prefix: Vec::with_capacity(5),
            claimed: None,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            done: false,
        }
    }

    fn over(&self) -> Status {
        Status::invalid_argument(format!(
            "the request message is over the limit of {} bytes (--max-body)",
            self.limit
        ))
    }

    /// Counts `data`; an error once the message's declared or actual size is over the limit.
    fn count(&mut self, data: &[u8]) -> Result<(), Status> {
        if self.prefix.len() < 5 {
            let take = (5 - self.prefix.len()).min(data.len());
            self.prefix.extend_from_slice(&data[..take]);
            if self.prefix.len() == 5 {
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                if len > self.limit {
                    return Err(self.over());
                }
                self.claimed = Some(len);
            }
        }
        self.seen = self.seen.saturating_add(data.len());
        if self.seen > self.limit.saturating_add(5) {
            return Err(self.over());
        }
        Ok(())
    }
}

impl HttpBody for Bounded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(e) = this.count(data)
                {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.done = true;
                // A body that ends short of its message is the client's error, not ours.
                let short = match this.claimed {
                    None => Some(format!(
                        "the request body ended after {} bytes, before its message's 5-byte gRPC prefix",
                        this.seen
                    )),
                    Some(len) if this.seen < len + 5 => Some(format!(
                        "the request body ended after {} of the {len} bytes its message claims",
                        this.seen - 5
                    )),
                    Some(_) => None,
                };
                Poll::Ready(short.map(|m| Err(Status::invalid_argument(m))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    return Poll::Ready(Some(Err(Status::invalid_argument(format!(
                        "the request body did not arrive within {} s",
                        this.timeout.as_secs()
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Only once polled to its end, so that an empty body is polled and refused here.
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The permit to read and parse a ModelInfer body, released once it is parsed.
#[derive(Clone)]
struct Reading(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

fn tensor_meta(t: protocol::TensorMeta) -> TensorMetadata {
    TensorMetadata {
        name: t.name.into(),
        datatype: t.datatype.into(),
        shape: t.shape,
    }
}

fn model_metadata(app: &App, r: ModelMetadataRequest) -> Reply<ModelMetadataResponse> {
    let kind = app.kind(&r.name).map_err(status)?;
    app.version(&r.version).map_err(status)?;
    Ok(tonic::Response::new(ModelMetadataResponse {
        name: app.spec.model_name(kind).into(),
        versions: vec![protocol::VERSION.into()],
        platform: protocol::PLATFORM.into(),
        inputs: vec![tensor_meta(app.spec.input_meta(kind))],
        outputs: vec![tensor_meta(app.spec.output_meta())],
    }))
}

fn data_type(name: &str) -> i32 {
    let t = match name {
        "TYPE_FP32" => DataType::TypeFp32,
        "TYPE_STRING" => DataType::TypeString,
        _ => DataType::TypeInvalid,
    };
    t as i32
}

fn model_config(app: &App, r: ModelConfigRequest) -> Reply<ModelConfigResponse> {
    let kind = app.kind(&r.name).map_err(status)?;
    app.version(&r.version).map_err(status)?;
    let c = app.spec.config(kind, app.delay_us, app.max_queue);
    let to_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
    Ok(tonic::Response::new(ModelConfigResponse {
        config: Some(ModelConfig {
            name: c.name,
            platform: c.platform.into(),
            backend: c.platform.into(),
            max_batch_size: to_i32(c.max_batch_size),
            input: vec![ModelInput {
                name: c.input.name.into(),
                data_type: data_type(c.input.data_type),
                dims: c.input.dims,
                reshape: c.input.reshape.map(|shape| ModelTensorReshape { shape }),
            }],
            output: vec![ModelOutput {
                name: c.output.name.into(),
                data_type: data_type(c.output.data_type),
                dims: c.output.dims,
            }],
            instance_group: vec![ModelInstanceGroup {
                name: String::new(),
                count: to_i32(c.instance_count),
                kind: model_instance_group::Kind::KindGpu as i32,
            }],
            scheduling_choice: Some(model_config::SchedulingChoice::DynamicBatching(
                ModelDynamicBatching {
                    preferred_batch_size: vec![to_i32(c.preferred_batch_size)],
                    max_queue_delay_microseconds: c.max_queue_delay_us,
                    default_queue_policy: Some(ModelQueuePolicy {
                        max_queue_size: u32::try_from(c.max_queue_size).unwrap_or(u32::MAX),
                    }),
                },
            )),
        }),
    }))
}

async fn model_infer(
    app: Arc<App>,
    arrived: Instant,
    r: tonic::Request<ModelInferRequest>,
) -> Reply<ModelInferResponse> {
    let reading = r
        .extensions()
        .get::<Reading>()
        .and_then(|p| p.0.lock().expect("permit lock").take());
    let req = r.into_inner();
    let kind = app.kind(&req.model_name).map_err(status)?;
    app.version(&req.model_version).map_err(status)?;
    let done = match app
        .infer(kind, arrived, reading, move |spec| parse(spec, kind, req))
        .await
    {
        Ok(d) => d,
        Err(r) => {
            app.metrics.failure(kind);
            return Err(status(r));
        }
    };
    let shape = done.answer.shape(&app.spec, done.n).map(|d| d as i64);
    Ok(tonic::Response::new(ModelInferResponse {
        model_name: app.spec.model_name(kind).into(),
        model_version: protocol::VERSION.into(),
        id: done.reply,
        parameters: Default::default(),
        outputs: vec![InferOutputTensor {
            name: protocol::OUTPUT.into(),
            datatype: done.answer.datatype().into(),
            shape: shape.to_vec(),
            parameters: Default::default(),
            contents: None,
        }],
        raw_output_contents: vec![done.answer.raw()],
    }))
}

/// The typed contents a tensor carries besides `want`, for the message that says so.
fn other_contents(c: &InferTensorContents, want: &str) -> Option<&'static str> {
    [
        ("bool_contents", !c.bool_contents.is_empty()),
        ("int_contents", !c.int_contents.is_empty()),
        ("int64_contents", !c.int64_contents.is_empty()),
        ("uint_contents", !c.uint_contents.is_empty()),
        ("uint64_contents", !c.uint64_contents.is_empty()),
        ("fp32_contents", !c.fp32_contents.is_empty()),
        ("fp64_contents", !c.fp64_contents.is_empty()),
        ("bytes_contents", !c.bytes_contents.is_empty()),
    ]
    .into_iter()
    .find(|&(name, set)| set && name != want)
    .map(|(name, _)| name)
}

/// Checks a ModelInfer request and preprocesses its input; keeps its id for the answer.
fn parse(spec: &Spec, kind: Kind, req: ModelInferRequest) -> Result<(Prepared, String), String> {
    let mut req = req;
    protocol::check_input_count(spec, kind, req.inputs.len())?;
    let InferInputTensor {
        name,
        datatype,
        shape,
        mut contents,
        ..
    } = req.inputs.swap_remove(0);
    let checked = protocol::check_input(spec, kind, &name, &datatype, &shape)?;
    let want = Spec::input_name(kind);
    let data = match (req.raw_input_contents.as_slice(), contents.as_mut()) {
        ([raw], None) => Data::Raw(raw),
        ([], Some(c)) => {
            let typed = match kind {
                Kind::Tensor => "fp32_contents",
                Kind::Image => "bytes_contents",
            };
            if let Some(other) = other_contents(c, typed) {
                return Err(format!(
                    "input `{want}` carries {other}; expected {} in {typed} or raw_input_contents",
                    spec.input_desc(kind)
                ));
            }
            match kind {
                Kind::Tensor => Data::Numbers(std::mem::take(&mut c.fp32_contents)),
                Kind::Image => Data::Strings(c.bytes_contents.iter().map(Vec::as_slice).collect()),
            }
        }
        ([], None) => {
            return Err(format!(
                "input `{want}` has no data: neither contents nor raw_input_contents"
            ));
        }
        ([_], Some(_)) => {
            return Err(format!(
                "input `{want}` has both contents and raw_input_contents; send one"
            ));
        }
        (raw, _) => {
            return Err(format!(
                "the request has {} raw_input_contents for 1 input; expected one per input",
                raw.len()
            ));
        }
    };
    let input = protocol::input_values(spec, kind, &checked, data)?;
    let mut classification = None;
    for o in &req.outputs {
        protocol::check_output(spec, kind, &o.name)?;
        if let Some(p) = o.parameters.get("classification") {
            use infer_parameter::ParameterChoice as P;
            let k = match p.parameter_choice {
                Some(P::Int64Param(k)) => u64::try_from(k).ok(),
                Some(P::Uint64Param(k)) => Some(k),
                _ => None,
            };
            classification = Some(protocol::classification(spec, k)?);
        }
    }
    Ok((
        Prepared {
            n: checked.n,
            input,
            classification,
        },
        req.id,
    ))
}
