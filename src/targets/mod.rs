//! CRM targets: how a mapped row is encoded, and each CRM's protocol described to the
//! delivery engine ([`Adapter`]). Adding a Repsly target is a row of [`repsly::ENTITIES`], its
//! schema (a row of `crate::schema::TARGETS`) and the sandbox's own entity
//! (`crate::sandbox::repsly::ENTITIES`); a Plannr import type is its schema
//! (`crate::schema::schema_of`) and the sandbox's rules (`sandbox/plannr/rules.rs`).

mod lookup;
mod plannr_common;
pub mod plannr_contacts;
pub mod plannr_import;
mod report_file;
pub mod repsly;
mod repsly_json;
mod repsly_users;

use std::sync::Arc;

use crate::config::{PipelineSettings, TargetSpec};
use crate::delivery::{Adapter, Call, Reply};
use crate::mapping::spec::LookupBy;
use crate::mapping::{CompiledField, Mapped};
use crate::row::Failure;

pub use crate::mapping::json::Escapes;
pub use crate::row::{MappedRow, Partition, RemoteJob};
pub use lookup::{LookupField, Lookups};
pub use repsly_json::Custom;

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

    /// The fields a lookup fills before a row is sent (`lookup = { by = "email" }`).
    fn lookups(&self) -> &[LookupField] {
        &[]
    }

    /// The text field `at` (a position in mapper order) holds in an encoded row.
    fn cell(&self, _row: &MappedRow, _at: usize) -> Option<String> {
        None
    }

    /// Sets field `at` of an encoded row to `value` (what a lookup found).
    fn fill(&self, _row: &mut MappedRow, _at: usize, _value: &str) {}

    /// The request for page `page` (from 1) of the records whose `by` is `key`.
    fn lookup_call(&self, _base: &str, _by: LookupBy, _key: &str, _page: u32) -> Option<Call> {
        None
    }

    /// The ids on a lookup's answer page of the records whose `by` is exactly `key`, and
    /// whether a later page may hold more.
    fn read_lookup(
        &self,
        _by: LookupBy,
        _key: &str,
        _reply: &Reply,
    ) -> Result<(Vec<String>, bool), String> {
        Err("this target looks nothing up".into())
    }
}

/// The target for a pipeline.
pub fn build(pipeline: &PipelineSettings) -> Arc<dyn Target> {
    match &pipeline.target {
        TargetSpec::PlannrImport { import_type, mode } => {
            Arc::new(plannr_import::PlannrImport::for_pipeline(pipeline, import_type, mode))
        }
        TargetSpec::Named("plannr.contact_details") => {
            Arc::new(plannr_contacts::ContactDetails::new())
        }
        TargetSpec::Named(_) => match repsly::RepslyImport::for_pipeline(pipeline) {
            Some(t) => Arc::new(t),
            // Every other target is Repsly's: `every_named_target_builds_its_own_adapter`
            // holds the schema's table and the entities' together.
            None => Arc::new(plannr_contacts::ContactDetails::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_named_target_builds_its_own_adapter() {
        for t in crate::schema::TARGETS {
            let built = t.name == "plannr.contact_details"
                || super::repsly::RepslyImport::new(t.name, &[]).is_some();
            assert!(built, "{} has no adapter", t.name);
        }
    }
}
