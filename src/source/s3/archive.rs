//! Filing an object away into `processed/` or `failed/`: copy, then delete the original, both
//! bound to the ETag the object was imported with. An object replaced meanwhile is left where
//! it is for its own import; a copy an earlier, interrupted move made is recognised (by the
//! ETag it records) rather than copied again under a second, stamped name.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::{describe, encode_key, status_of, Object, S3Source, FAILED, PROCESSED};
use crate::source::names::{candidates, stamp_ms};

/// The user metadata (`x-amz-meta-...`) on an archived copy naming the ETag it was copied from.
const SOURCE_ETAG: &str = "crm-ingest-etag";

/// What became of an object being filed away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Copied to this key, the original deleted.
    To(String),
    /// Not there any more: an earlier, interrupted call moved it.
    AlreadyGone,
    /// Replaced by a new version since it was claimed: left in place, to be imported afresh.
    Replaced,
}

impl S3Source {
    /// Moves the object into `processed/` or `failed/` (copy, then delete the original),
    /// only as the version it was claimed as. Idempotent: each step finds what an earlier,
    /// interrupted call did.
    pub async fn file_away(&self, object: &Object, failed: bool) -> Result<Moved, String> {
        let Some(head) = self.head_of(&object.key).await? else { return Ok(Moved::AlreadyGone) };
        if head.e_tag().unwrap_or_default() != object.etag {
            return Ok(Moved::Replaced);
        }
        let dir = if failed { FAILED } else { PROCESSED };
        let (to, copied) = self.archive_key(dir, object).await?;
        if !copied && !self.copy(object, &head, &to).await? {
            return Ok(Moved::Replaced);
        }
        let mut delete = self.client.delete_object().bucket(&self.settings.bucket).key(&object.key);
        if !object.etag.is_empty() {
            delete = delete.if_match(&object.etag);
        }
        match delete.send().await {
            Ok(_) => Ok(Moved::To(to)),
            Err(e) if status_of(&e) == Some(404) => Ok(Moved::To(to)),
            Err(e) if status_of(&e) == Some(412) => Ok(Moved::Replaced),
            Err(e) => Err(format!(
                "cannot delete s3://{}/{}: {}",
                self.settings.bucket,
                object.key,
                describe(&e)
            )),
        }
    }

    /// Where the object goes under `dir`: the first free name, or the one that already holds
    /// its copy (`true`). Clashes are stamped with the object's own modification time, so a
    /// retried move looks at the same names.
    async fn archive_key(&self, dir: &str, object: &Object) -> Result<(String, bool), String> {
        let stamp = stamp_ms(object.modified_ms);
        for name in candidates(&object.name, &stamp) {
            let key = format!("{}{dir}{name}", self.settings.prefix);
            match self.head_of(&key).await? {
                None => return Ok((key, false)),
                Some(h) if copy_of(&h, object) => return Ok((key, true)),
                Some(_) => {}
            }
        }
        Ok((format!("{}{dir}{}", self.settings.prefix, object.name), false))
    }

    /// Copies the object to `to` if it is still the version claimed, recording that version's
    /// ETag on the copy (its type, encoding and metadata kept); `false` if it was replaced.
    async fn copy(
        &self,
        object: &Object,
        head: &HeadObjectOutput,
        to: &str,
    ) -> Result<bool, String> {
        let source = format!("{}/{}", self.settings.bucket, encode_key(&object.key));
        let mut copy = self
            .client
            .copy_object()
            .bucket(&self.settings.bucket)
            .copy_source(source)
            .key(to)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_metadata(head.metadata().cloned())
            .metadata(SOURCE_ETAG, &object.etag)
            .set_content_type(head.content_type().map(String::from))
            .set_content_encoding(head.content_encoding().map(String::from));
        if !object.etag.is_empty() {
            copy = copy.copy_source_if_match(&object.etag);
        }
        match copy.send().await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(412) => Ok(false),
            Err(e) => Err(format!(
                "cannot copy s3://{}/{} to {to}: {}",
                self.settings.bucket,
                object.key,
                describe(&e)
            )),
        }
    }

    /// The object at `key` as it is now; `None` when it is not there.
    async fn head_of(&self, key: &str) -> Result<Option<HeadObjectOutput>, String> {
        match self.client.head_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(h) => Ok(Some(h)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => {
                Err(format!("cannot look at s3://{}/{key}: {}", self.settings.bucket, describe(&e)))
            }
        }
    }
}

/// Whether an archived object is the copy of `object`: it records the ETag it was copied
/// from, or (an archive from before that was recorded) has the same ETag.
fn copy_of(archived: &HeadObjectOutput, object: &Object) -> bool {
    let recorded = archived.metadata().and_then(|m| m.get(SOURCE_ETAG));
    match recorded {
        Some(etag) => *etag == object.etag,
        None => archived.e_tag().is_some_and(|e| e == object.etag),
    }
}
