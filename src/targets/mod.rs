//! CRM targets: how a mapped row is encoded, and each CRM's protocol described to the
//! delivery engine ([`Adapter`]). Adding a target is one file here plus its schema.

mod plannr_common;
pub mod plannr_contacts;
pub mod plannr_import;
mod report_file;
pub mod repsly;

use std::sync::Arc;

use crate::config::{PipelineSettings, TargetSpec};
use crate::delivery::Adapter;
use crate::mapping::{CompiledField, Mapped};
use crate::row::Failure;

pub use crate::mapping::json::Escapes;
pub use crate::row::{MappedRow, Partition, RemoteJob};

/// A target: row encoding (the hot path) on top of the protocol the engine drives.
pub trait Target: Adapter {
    fn spec(&self) -> &TargetSpec;

    /// Appends one mapped row, encoded, to `out`; `fields` are the mapper's, in the order of
    /// `values`; `escapes` says whether its text was found free of bytes JSON must escape.
    /// The caller reuses `out` across rows: encoding allocates nothing per row.
    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        escapes: Escapes,
        out: &mut Vec<u8>,
    );

    /// The value the CRM reports a row's failures by (Repsly `Code`); empty for targets that
    /// match rows another way.
    fn key(&self, _fields: &[CompiledField], _values: &Mapped) -> String {
        String::new()
    }

    /// Rows that can share one create have the same partition (Plannr update imports: the
    /// same set of fields present); the delivery engine never mixes partitions in a batch.
    fn partition(&self, _fields: &[CompiledField], _values: &Mapped) -> Partition {
        Partition::default()
    }

    /// Rules across fields that the schema cannot state (a contact detail's value must suit
    /// its type); a failure is a `validate` failure of the row.
    fn validate(&self, _fields: &[CompiledField], _values: &Mapped) -> Result<(), Failure> {
        Ok(())
    }

    /// An encoded row as JSON, for `plan`'s sample payloads.
    fn preview(&self, body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
    }
}

/// The target for a pipeline.
pub fn build(pipeline: &PipelineSettings) -> Arc<dyn Target> {
    match &pipeline.target {
        TargetSpec::RepslyClients => Arc::new(repsly::RepslyClients::new()),
        TargetSpec::PlannrImport { import_type, mode } => {
            let fields = pipeline.fields.iter().map(|f| f.target.clone()).collect();
            Arc::new(plannr_import::PlannrImport::new(
                pipeline.target.clone(),
                import_type.clone(),
                mode.clone(),
                fields,
            ))
        }
        TargetSpec::PlannrContactDetails => Arc::new(plannr_contacts::ContactDetails::new()),
    }
}
