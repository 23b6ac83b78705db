//! `resnet_wgpu._native`: the engine's embedding API ([`resnet_wgpu::Classifier`],
//! [`resnet_wgpu::bench`]) as a Python extension module. `resnet_wgpu/__init__.py` re-exports
//! it beside the pure-Python parts (`bench()`'s dict, Ray placement).
//!
//! Every call that decodes images or touches the GPU releases the GIL (`Python::detach`), so
//! Python threads run them at the same time; what they need from Python objects is copied out
//! first, while the GIL is held, so that no Python code can change it under the GPU's feet.
//! Engine errors become Python exceptions by [`ErrorKind`] (see [`py_err`]), their message the
//! engine's own.

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{
    PyFileNotFoundError, PyOSError, PyRuntimeError, PyRuntimeWarning, PyTimeoutError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};
use resnet_wgpu::bench::{Bench, BenchOptions};
use resnet_wgpu::classify::{ClassifyOptions, Sizing, Source, classify_with};
use resnet_wgpu::gpu::context::list_adapters;
use resnet_wgpu::gpu::{AdapterChoice, Backend, GpuContext};
use resnet_wgpu::labels::Labels;
use resnet_wgpu::model::Flavour;
use resnet_wgpu::model::load::LoadOptions;
use resnet_wgpu::plan::Precision;
use resnet_wgpu::plan::tuning::TuningTable;
use resnet_wgpu::preprocess::{Preprocess, Resize};
use resnet_wgpu::{Classifier, ClassifierOptions, Error, ErrorKind, Model, Prediction};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The Python exception for an engine error: a missing file `FileNotFoundError`, other I/O
/// `OSError`, bad data `ValueError`, the GPU `RuntimeError`, a GPU deadline `TimeoutError`.
fn py_err(e: Error) -> PyErr {
    py_err_ref(&e)
}

/// [`py_err`] of an error shared by several images (the classify service's outcomes).
fn py_err_ref(e: &Error) -> PyErr {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        ErrorKind::Io => PyOSError::new_err(message),
        ErrorKind::Input => PyValueError::new_err(message),
        ErrorKind::Gpu => PyRuntimeError::new_err(message),
        ErrorKind::Timeout => PyTimeoutError::new_err(message),
    }
}

/// `value` as a count of at least 1: Python ints are signed, and `-1` should be a `ValueError`
/// naming the argument, not an `OverflowError` about unsigned integers.
fn positive(name: &str, value: i64) -> PyResult<usize> {
    match usize::try_from(value) {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be at least 1, got {value}"
        ))),
    }
}

fn optional_positive(name: &str, value: Option<i64>) -> PyResult<Option<usize>> {
    value.map(|v| positive(name, v)).transpose()
}

/// A poisoned lock only means that another thread panicked while it held the list of
/// sessions; the list itself is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `adapter=`: an index as listed by `adapters()` or a substring of the adapter's name.
#[derive(FromPyObject)]
enum AdapterArg {
    Index(usize),
    Name(String),
}

impl AdapterArg {
    fn into_string(self) -> String {
        match self {
            AdapterArg::Index(i) => i.to_string(),
            AdapterArg::Name(s) => s,
        }
    }
}

/// `labels=`: one name per class, or a file with one per line.
#[derive(FromPyObject)]
enum LabelsArg {
    // First: PyO3 refuses to turn a `str` into a list, so a path string falls through.
    Names(Vec<String>),
    File(PathBuf),
}

fn adapter_choice(adapter: Option<AdapterArg>, backend: Option<&str>) -> PyResult<AdapterChoice> {
    Ok(AdapterChoice {
        backend: backend
            .map(str::parse::<Backend>)
            .transpose()
            .map_err(py_err)?,
        adapter: adapter.map(AdapterArg::into_string),
    })
}

/// The tuning table `resnet tune` stored for this adapter, taken as the CLI takes it, so that a
/// tuned machine still gets `resnet infer`'s numbers from `logits`. A file that cannot be used
/// is not trusted (the heuristic's kernels run), and the reason comes back for [`warn`].
fn stored_tuning(
    ctx: &GpuContext,
    precision: Precision,
) -> (Option<Arc<TuningTable>>, Option<String>) {
    let (found, warning) = resnet_wgpu::tune::load_or_warn(ctx, None, precision);
    (found.map(|(_, t)| t), warning)
}

/// A `RuntimeWarning` (the CLI prints `warning:` lines; Python code filters warnings).
fn warn(py: Python<'_>, message: Option<String>) -> PyResult<()> {
    match message {
        Some(m) => {
            let m = CString::new(m.replace('\0', " ")).expect("no NUL left");
            PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &m, 1)
        }
        None => Ok(()),
    }
}

fn parse_precision(precision: &str) -> PyResult<Precision> {
    precision.parse().map_err(py_err)
}

/// Which session a call needs: the input size, and whether it reads back the stage maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    height: usize,
    width: usize,
    features: bool,
}

/// One image's classes, or its error (shared by the images of a batch that failed together).
type ImageResult = Result<Vec<Prediction>, Arc<Error>>;

/// Sessions kept besides `classify`'s: each holds its own copy of the weights on the GPU.
const KEPT_SESSIONS: usize = 4;

/// A checkpoint on a GPU, with its preprocessing and labels.
///
/// ``Classifier(weights, precision="f32", adapter=None, backend=None, batch=16, *,
/// labels=None, size=None, resize=None, flavour=None)``
///
/// * ``weights``: a checkpoint in any format ``resnet classify --weights`` reads (safetensors
///   in F32, F16 or BF16, a transformers folder, ONNX); the flavour is inferred from the
///   names unless ``flavour`` says it. A transformers folder brings its labels and
///   preprocessing.
/// * ``precision``: ``"f32"``, or ``"f16"`` storage (f32 arithmetic; needs ``SHADER_F16``).
/// * ``adapter``: an index from ``adapters()`` or a substring of an adapter's name;
///   ``backend``: ``"vulkan"``, ``"metal"``, ``"dx12"`` or ``"gl"``. Default: the best GPU.
/// * ``batch``: most images per GPU submission; larger inputs are split.
/// * ``labels``: a list of class names or a file with one per line (default: the
///   checkpoint's own, else ImageNet's for 1000/1001 classes, else the indices).
/// * ``size``, ``resize``: ``classify``'s network input side and shorter-side resize, as
///   ``resnet classify --size/--resize`` (default: the checkpoint's evaluation preprocessing).
///
/// One ``Classifier`` may be used from several threads: calls release the GIL and take turns
/// on the GPU. Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a bad
/// checkpoint, labels or argument, ``RuntimeError`` when no GPU adapter can be opened (the
/// message says how to install one).
#[pyclass(frozen, module = "resnet_wgpu", name = "Classifier")]
struct PyClassifier {
    model: Model,
    ctx: GpuContext,
    /// `classify`'s preprocessing, resolved from the flavour and `size`/`resize`.
    preprocess: Preprocess,
    labels: Labels,
    /// What every session is built with (`preprocess` and `features` set per session).
    options: ClassifierOptions,
    /// Sessions by input size, built on first use (pipelines take seconds to compile on a
    /// software adapter): `classify`'s is never dropped, the others beyond [`KEPT_SESSIONS`]
    /// least recently used first.
    sessions: Mutex<Vec<(Key, Arc<Classifier>)>>,
}

impl PyClassifier {
    /// The session `classify` and `preprocess` use.
    fn classify_key(&self) -> Key {
        let (height, width) = self.preprocess.output_size();
        Key {
            height,
            width,
            features: false,
        }
    }

    /// The session for `key`, built on first use.
    fn session(&self, key: Key) -> Result<Arc<Classifier>, Error> {
        let mut kept = lock(&self.sessions);
        if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
            let entry = kept.remove(i);
            let classifier = entry.1.clone();
            kept.push(entry);
            return Ok(classifier);
        }
        let preprocess = if key == self.classify_key() {
            self.preprocess
        } else {
            // Sessions for `logits`/`features` take preprocessed input: only the size matters.
            Preprocess {
                resize: Resize::None {
                    height: key.height,
                    width: key.width,
                },
                ..self.preprocess
            }
        };
        let opts = ClassifierOptions {
            preprocess: Some(preprocess),
            features: key.features,
            ..self.options.clone()
        };
        let classifier = Arc::new(Classifier::with_context(&self.model, &self.ctx, &opts)?);
        let classify = self.classify_key();
        if kept.iter().filter(|(k, _)| *k != classify).count() >= KEPT_SESSIONS
            && let Some(oldest) = kept.iter().position(|(k, _)| *k != classify)
        {
            kept.remove(oldest);
        }
        kept.push((key, classifier.clone()));
        Ok(classifier)
    }

    /// `x` as a float32 NCHW batch with the model's channels: its values (copied, in C order)
    /// and shape.
    fn nchw(&self, x: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, [usize; 4])> {
        let array = x.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "expected a numpy.ndarray (float32, N x C x H x W), got {}",
                type_name(x)
            ))
        })?;
        let array = array.cast::<PyArrayDyn<f32>>().map_err(|_| {
            PyTypeError::new_err(format!(
                "the array's dtype is {}; the network takes float32: convert with \
                 x.astype(numpy.float32)",
                array.dtype()
            ))
        })?;
        let shape = match *array.shape() {
            [n, c, h, w] => [n, c, h, w],
            ref s => {
                return Err(PyValueError::new_err(format!(
                    "expected a 4-D N x C x H x W array, got shape {s:?}"
                )));
            }
        };
        let want = self.model.network.arch.in_channels;
        if shape[1] != want {
            return Err(PyValueError::new_err(format!(
                "the array has {} channels (shape {shape:?}) but the model takes {want}; the \
                 layout is N x C x H x W (for N x H x W x C use x.transpose(0, 3, 1, 2))",
                shape[1]
            )));
        }
        let array = array.readonly();
        let data = match array.as_slice() {
            Ok(s) => s.to_vec(),
            // Any strides: copied in logical order.
            Err(_) => array.as_array().iter().copied().collect(),
        };
        Ok((data, shape))
    }

    /// Decodes and preprocesses each image and classifies those that succeeded, through the
    /// library's classify service ([`resnet_wgpu::classify`]) on this classifier's kept
    /// session. The outer error is the GPU's (no image can be classified); the inner ones
    /// belong to single images. `fail_fast`: the first bad image ends the call (a decode
    /// error before any GPU work).
    fn classify_sources(
        &self,
        sources: Vec<Source>,
        top: usize,
        fail_fast: bool,
    ) -> Result<Vec<ImageResult>, Arc<Error>> {
        let report = classify_with(
            |_| self.session(self.classify_key()),
            self.preprocess,
            self.options.max_batch,
            sources,
            &ClassifyOptions {
                top,
                sizing: Sizing::Fixed,
                fail_fast,
                lose_device_after: None,
            },
        )?;
        if let Some(e) = report.stopped {
            return Err(e);
        }
        let results: Vec<_> = report.outcomes.into_iter().map(|o| o.result).collect();
        if fail_fast && let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            return Err(e.clone());
        }
        Ok(results)
    }
}

#[pymethods]
impl PyClassifier {
    #[new]
    #[pyo3(signature = (
        weights, precision="f32", adapter=None, backend=None, batch=16, *,
        labels=None, size=None, resize=None, flavour=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        weights: PathBuf,
        precision: &str,
        adapter: Option<AdapterArg>,
        backend: Option<&str>,
        batch: i64,
        labels: Option<LabelsArg>,
        size: Option<i64>,
        resize: Option<i64>,
        flavour: Option<&str>,
    ) -> PyResult<Self> {
        let precision = parse_precision(precision)?;
        let choice = adapter_choice(adapter, backend)?;
        let batch = positive("batch", batch)?;
        let size = optional_positive("size", size)?;
        let resize = optional_positive("resize", resize)?;
        let flavour = flavour
            .map(str::parse::<Flavour>)
            .transpose()
            .map_err(py_err)?;
        let (classifier, warning) = py
            .detach(|| {
                // The checkpoint first: a bad file fails before a device is opened.
                let model = Model::load_with(&weights, &LoadOptions { flavour })?;
                // The checkpoint's own preprocessing and labels where its files give them
                // (transformers' folders), as `resnet classify` takes them.
                let preprocess = model.preprocess().with_overrides(size, resize, false);
                let labels = match labels {
                    None => model.default_labels(),
                    Some(LabelsArg::File(path)) => Labels::from_file(&path, model.classes())?,
                    Some(LabelsArg::Names(names)) => Labels::new(names, model.classes(), "labels")?,
                };
                let ctx = GpuContext::new(&choice)?;
                let (tuning, warning) = stored_tuning(&ctx, precision);
                let options = ClassifierOptions {
                    max_batch: batch,
                    preprocess: Some(preprocess),
                    labels: Some(labels.clone()),
                    adapter: choice,
                    precision,
                    tuning,
                    ..Default::default()
                };
                let classifier = PyClassifier {
                    model,
                    ctx,
                    preprocess,
                    labels,
                    options,
                    sessions: Mutex::new(Vec::new()),
                };
                Ok((classifier, warning))
            })
            .map_err(py_err)?;
        warn(py, warning)?;
        Ok(classifier)
    }

    /// ``logits(x) -> numpy.ndarray``: the logits ``[N, classes]`` (float32) of a float32
    /// ``N x C x H x W`` array, already preprocessed (any H and W from 32 up; a size other
    /// than ``input_size`` builds a session for it on first use). The same numbers as
    /// ``resnet infer`` with the same ``batch``.
    ///
    /// Raises ``TypeError`` for a non-array or another dtype, ``ValueError`` for a wrong shape,
    /// an empty batch, NaN or infinity in ``x``.
    fn logits<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (data, [n, _, h, w]) = self.nchw(x)?;
        let key = Key {
            height: h,
            width: w,
            features: false,
        };
        let logits = py
            .detach(|| self.session(key)?.logits(&data, n))
            .map_err(py_err)?;
        let classes = self.model.classes();
        Ok(PyArray1::from_vec(py, logits)
            .reshape([n, classes])?
            .into_any())
    }

    /// ``features(x) -> dict[str, numpy.ndarray]``: every stage's map of a float32
    /// ``N x C x H x W`` array, as ``resnet infer --features`` writes them without the
    /// ``feat/`` prefix: ``stem_conv``, ``stem_pool``, ``stage1`` … ``stage4``, ``post_norm``
    /// (pre-activation v2 models), each ``N x C x H x W``, and ``pooled`` ``[N, C]``: the
    /// global-average-pooled embedding. Raises as ``logits``.
    fn features<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (data, [n, _, h, w]) = self.nchw(x)?;
        let key = Key {
            height: h,
            width: w,
            features: true,
        };
        let out = py
            .detach(|| self.session(key)?.run(&data, n))
            .map_err(py_err)?;
        let maps = PyDict::new(py);
        for f in out.features {
            let name = f.name.strip_prefix("feat/").unwrap_or(&f.name).to_string();
            let array = PyArray1::from_vec(py, f.data);
            let array = if name == "pooled" {
                array.reshape([f.shape[0], f.shape[1]])?.into_any()
            } else {
                array.reshape(f.shape)?.into_any()
            };
            maps.set_item(name, array)?;
        }
        Ok(maps)
    }

    #[pyo3(name = "preprocess")]
    /// ``preprocess(images) -> numpy.ndarray``: the network input ``[N, 3, H, W]`` (float32)
    /// that ``classify`` feeds the network, decoded and resized exactly as Pillow and the
    /// flavour's framework do. ``images`` as for ``classify``; a bad image raises.
    fn preprocess_images<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sources = sources(images)?;
        let n = sources.len();
        let pre = self.preprocess;
        let data = py
            .detach(|| {
                let mut data = Vec::new();
                for s in sources {
                    data.extend(pre.apply(&s.decode(pre.alpha)?)?);
                }
                Ok(data)
            })
            .map_err(py_err)?;
        let (h, w) = pre.output_size();
        let channels = self.model.network.arch.in_channels;
        Ok(PyArray1::from_vec(py, data)
            .reshape([n, channels, h, w])?
            .into_any())
    }

    /// ``classify(images, top=5, errors="raise") -> list[list[tuple[int, str, float]]]``:
    /// the ``top`` most probable classes of each image as ``(index, label, probability)``,
    /// best first; the same answers as ``resnet classify`` with the same ``batch``.
    ///
    /// ``images``: a list (or any iterable) of file paths (``str`` or ``os.PathLike``),
    /// encoded image bytes (JPEG, PNG, WebP, BMP, GIF), or ``uint8`` pixel arrays ``H x W x 3``
    /// (RGB), ``H x W x 4`` (alpha dropped) or ``H x W`` (grey), in any mix.
    ///
    /// ``errors="raise"``: a bad image raises (``FileNotFoundError``, ``ValueError``,
    /// ``TypeError``) before the GPU runs. ``errors="return"``: the other images are still
    /// classified, and a bad one's entry is its exception instead of a list. A GPU failure
    /// raises ``RuntimeError`` either way.
    #[pyo3(signature = (images, top=5, errors="raise"))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        top: i64,
        errors: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let top = positive("top", top)?;
        let fail_fast = match errors {
            "raise" => true,
            "return" => false,
            other => {
                return Err(PyValueError::new_err(format!(
                    "errors={other:?}: use \"raise\" or \"return\""
                )));
            }
        };
        let sources = sources(images)?;
        let results = py
            .detach(|| self.classify_sources(sources, top, fail_fast))
            .map_err(|e| py_err_ref(&e))?;
        let out = PyList::empty(py);
        for r in results {
            match r {
                Ok(predictions) => {
                    let row = PyList::empty(py);
                    for p in predictions {
                        row.append(PyTuple::new(
                            py,
                            [
                                p.index.into_pyobject(py)?.into_any(),
                                PyString::new(py, &p.label).into_any(),
                                f64::from(p.probability).into_pyobject(py)?.into_any(),
                            ],
                        )?)?;
                    }
                    out.append(row)?;
                }
                Err(e) => out.append(py_err_ref(&e).into_value(py))?,
            }
        }
        Ok(out)
    }

    /// Number of classes the model outputs.
    #[getter]
    fn classes(&self) -> usize {
        self.model.classes()
    }

    /// The class names, by index.
    #[getter]
    fn labels(&self) -> Vec<String> {
        (0..self.labels.len())
            .map(|i| self.labels.get(i).to_string())
            .collect()
    }

    /// The flavour the weights were read as (``torchvision``, ``timm-v2``, ``keras-v1``,
    /// ``keras-v2``, ``slim-v2``).
    #[getter]
    fn flavour(&self) -> String {
        self.model.flavour().to_string()
    }

    /// What loading had to assume about the checkpoint (as ``resnet classify`` prints them
    /// as ``note:`` lines), e.g. a flavour guessed from a transformers config.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.model.notes.clone()
    }

    /// ``(height, width)`` of ``classify``'s network input.
    #[getter]
    fn input_size(&self) -> (usize, usize) {
        self.preprocess.output_size()
    }

    /// ``"f32"`` or ``"f16"``: how weights and activations are stored.
    #[getter]
    fn precision(&self) -> &'static str {
        self.options.precision.name()
    }

    /// Most images per GPU submission.
    #[getter]
    fn batch(&self) -> usize {
        self.options.max_batch
    }

    /// The adapter this classifier runs on, as ``adapters()`` describes it.
    #[getter]
    fn adapter<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        adapter_dict(py, &self.ctx.info, None)
    }

    fn __repr__(&self) -> String {
        let (h, w) = self.preprocess.output_size();
        format!(
            "Classifier({} ResNet-{}, {} classes, {h}x{w}, {}, batch {}, on {})",
            self.model.flavour(),
            self.model.network.arch.depth(),
            self.model.classes(),
            self.options.precision.name(),
            self.options.max_batch,
            self.ctx.info.name
        )
    }
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map_or_else(|_| "object".into(), |n| n.to_string())
}

/// The images of a `classify`/`preprocess` call. A lone image (a path, bytes, one pixel
/// array) is refused: iterating it would silently classify its characters or pixel rows.
fn sources(images: &Bound<'_, PyAny>) -> PyResult<Vec<Source>> {
    let lone = images.is_instance_of::<PyString>()
        || images.is_instance_of::<PyBytes>()
        || images.is_instance_of::<PyByteArray>()
        || images.hasattr("__fspath__")?
        || images
            .cast::<PyUntypedArray>()
            .is_ok_and(|a| a.dtype().kind() != b'O' && a.ndim() < 4);
    if lone {
        return Err(PyTypeError::new_err(format!(
            "expected a list of images, got one {}: wrap it in a list, e.g. classify([image]) \
             (a 4-D uint8 array N x H x W x C is a batch)",
            type_name(images)
        )));
    }
    let mut out = Vec::new();
    for (i, item) in images.try_iter()?.enumerate() {
        out.push(source(&item?, i)?);
    }
    Ok(out)
}

/// Image `i` of a `classify` call, owned (copied out of Python while the GIL is held); errors
/// call it by its path, else `image {i} (bytes)` or `image {i} (pixel array)`.
fn source(item: &Bound<'_, PyAny>, i: usize) -> PyResult<Source> {
    let bytes = |bytes| Source::Bytes {
        name: format!("image {i} (bytes)"),
        bytes,
    };
    if let Ok(b) = item.cast::<PyBytes>() {
        return Ok(bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = item.cast::<PyByteArray>() {
        return Ok(bytes(b.to_vec()));
    }
    if let Ok(a) = item.cast::<PyUntypedArray>() {
        return pixels(a, i).map(|image| Source::Image {
            name: format!("image {i} (pixel array)"),
            image,
        });
    }
    if item.is_instance_of::<PyString>() || item.hasattr("__fspath__")? {
        return Ok(Source::Path(item.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "image {i} is a {}: images are file paths (str or os.PathLike), encoded image bytes, or \
         uint8 pixel arrays (H x W x 3, H x W x 4 or H x W)",
        type_name(item)
    )))
}

/// A uint8 `H x W`, `H x W x 1|2|3|4` array as the image it holds (grey, grey + alpha, RGB,
/// RGBA), converted to RGB later exactly as a decoded file is.
fn pixels(a: &Bound<'_, PyUntypedArray>, i: usize) -> PyResult<image::DynamicImage> {
    let a = a.cast::<PyArrayDyn<u8>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "image {i} is a {} array: pixel arrays must be uint8 (preprocessed float input goes \
             to logits())",
            a.dtype()
        ))
    })?;
    let shape = a.shape().to_vec();
    let (h, w, c) = match shape[..] {
        [h, w] => (h, w, 1),
        [h, w, c @ 1..=4] => (h, w, c),
        _ => {
            return Err(PyValueError::new_err(format!(
                "image {i} has shape {shape:?}: pixel arrays are H x W x 3 (RGB), H x W x 4 \
                 (RGBA), H x W x 1, H x W x 2 or H x W (grey)"
            )));
        }
    };
    let too_big =
        || PyValueError::new_err(format!("image {i} has shape {shape:?}: too large an image"));
    let (width, height) = (
        u32::try_from(w).map_err(|_| too_big())?,
        u32::try_from(h).map_err(|_| too_big())?,
    );
    let a = a.readonly();
    let view = a.as_array();
    let values: Vec<u8> = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => view.iter().copied().collect(),
    };
    let img = match c {
        1 => image::GrayImage::from_raw(width, height, values).map(image::DynamicImage::from),
        2 => image::GrayAlphaImage::from_raw(width, height, values).map(image::DynamicImage::from),
        3 => image::RgbImage::from_raw(width, height, values).map(image::DynamicImage::from),
        _ => image::RgbaImage::from_raw(width, height, values).map(image::DynamicImage::from),
    };
    img.ok_or_else(too_big)
}

/// An adapter as a dict: `index` (within its backend, for `adapter=`), `name`, `backend`,
/// `device_type`, `vendor` and `device` (PCI ids where the backend has them), `pci_bus_id`,
/// `driver`, `driver_info`.
fn adapter_dict<'py>(
    py: Python<'py>,
    info: &wgpu::AdapterInfo,
    index: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(i) = index {
        d.set_item("index", i)?;
    }
    d.set_item("name", &info.name)?;
    d.set_item("backend", format!("{:?}", info.backend).to_lowercase())?;
    d.set_item("device_type", format!("{:?}", info.device_type))?;
    d.set_item("vendor", info.vendor)?;
    d.set_item("device", info.device)?;
    d.set_item("pci_bus_id", &info.device_pci_bus_id)?;
    d.set_item("driver", &info.driver)?;
    d.set_item("driver_info", &info.driver_info)?;
    Ok(d)
}

/// ``adapters(backend=None) -> list[dict]``: every adapter wgpu finds (on one backend:
/// ``"vulkan"``, ``"metal"``, ``"dx12"``, ``"gl"``), as dicts with ``index``, ``name``,
/// ``backend``, ``device_type`` (``DiscreteGpu``, ``IntegratedGpu``, ``Cpu`` …), ``vendor`` and
/// ``device`` (PCI ids), ``pci_bus_id``, ``driver``, ``driver_info``.
/// ``Classifier(adapter=a["index"], backend=a["backend"])`` opens adapter ``a``.
#[pyfunction]
#[pyo3(signature = (backend=None))]
fn adapters<'py>(py: Python<'py>, backend: Option<&str>) -> PyResult<Bound<'py, PyList>> {
    let backend = backend
        .map(str::parse::<Backend>)
        .transpose()
        .map_err(py_err)?;
    let infos: Vec<_> = py.detach(|| {
        list_adapters(backend)
            .iter()
            .map(|a| a.get_info())
            .collect()
    });
    let out = PyList::empty(py);
    for (i, info) in infos.iter().enumerate() {
        // `adapter=` indexes the adapters of one backend.
        let index = infos[..i]
            .iter()
            .filter(|o| o.backend == info.backend)
            .count();
        out.append(adapter_dict(py, info, Some(index))?)?;
    }
    Ok(out)
}

/// The benchmark as `resnet bench --json` prints it (one batch size); `resnet_wgpu.bench`
/// turns it into a dict.
#[pyfunction]
#[pyo3(signature = (
    model, weights, batch, size, warmup, steps, seed, precision, adapter, backend
))]
#[allow(clippy::too_many_arguments)]
fn bench_json(
    py: Python<'_>,
    model: String,
    weights: Option<PathBuf>,
    batch: i64,
    size: i64,
    warmup: Option<i64>,
    steps: Option<i64>,
    seed: u64,
    precision: &str,
    adapter: Option<AdapterArg>,
    backend: Option<&str>,
) -> PyResult<String> {
    let count = |name: &str, v: i64| {
        usize::try_from(v)
            .map_err(|_| PyValueError::new_err(format!("{name} must not be negative, got {v}")))
    };
    let opts = BenchOptions {
        model,
        weights,
        size: positive("size", size)?,
        warmup: warmup.map(|v| count("warmup", v)).transpose()?,
        steps: steps.map(|v| count("steps", v)).transpose()?,
        seed,
        precision: parse_precision(precision)?,
        adapter: adapter_choice(adapter, backend)?,
        profile: None,
        // Read once the device is open (see `stored_tuning`).
        tuning: None,
        // `setup_s` counts from this call: the Python process started long before.
        started: Some(Instant::now()),
    };
    let batch = positive("batch", batch)?;
    let (result, warning) = py
        .detach(|| {
            let ctx = GpuContext::new(&opts.adapter)?;
            let (tuning, warning) = stored_tuning(&ctx, opts.precision);
            let bench = Bench::with_context(ctx, &BenchOptions { tuning, ..opts })?;
            Ok((bench.run(batch)?, warning))
        })
        .map_err(py_err)?;
    warn(py, warning)?;
    serde_json::to_string(&result).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClassifier>()?;
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add_function(wrap_pyfunction!(bench_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
