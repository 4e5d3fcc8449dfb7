//! Recording files: uploaded by the platform (`PUT`, streamed to disk), downloaded by receivers
//! through signed, expiring links (`GET …/content`, no token, Range supported).

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

use super::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::model::tenancy::{check_slug, Role};
use crate::security::links::LinkError;
use crate::store::RecordingMeta;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/recordings/{file_id}", put(upload))
        .route("/v1/recordings/{file_id}/content", get(download))
}

fn recordings_dir(s: &AppState) -> PathBuf {
    s.config.data_dir.join("recordings")
}

pub fn file_path(s: &AppState, tenant_id: &str, file_id: &str) -> PathBuf {
    crate::retention::recording_path(&s.config.data_dir, tenant_id, file_id)
}

/// Removes every recording file of a tenant (deleted, or about to be created anew), so no file
/// outlives its tenant's records.
pub(crate) async fn remove_tenant_files(s: &AppState, tenant_id: &str) {
    let dir = recordings_dir(s).join(tenant_id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "could not remove a tenant's recording files")
        }
    }
}

/// A file being uploaded: removed when dropped unless kept, so a failed or abandoned upload
/// (the client disconnects and the handler is dropped mid-stream) leaves nothing behind.
struct PartialFile(Option<PathBuf>);

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn sync_dir(dir: &FsPath) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

#[utoipa::path(put, path = "/v1/recordings/{file_id}", tag = "recordings",
    params(("file_id" = String, Path),
           ("tenant_id" = Option<String>, Query, description = "required with an operator token")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "the file, streamed; send its own Content-Type (e.g. audio/wav)"),
    responses((status = 201, body = RecordingMeta), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub(crate) async fn upload(
    State(s): State<AppState>,
    p: Principal,
    Path(file_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<RecordingMeta>)> {
    p.require(
        matches!(p.role, Role::Operator | Role::Ingest),
        "upload recordings",
    )?;
    check_slug("file_id", &file_id).map_err(|m| ApiError::bad_request("invalid_file_id", m))?;
    let tenant_id = match (&p.tenant_id, q.get("tenant_id")) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(format!(
                "this token uploads for tenant `{own}` only"
            )))
        }
        (Some(own), _) => own.clone(),
        (None, Some(asked)) => asked.clone(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "tenant_required",
                "name the tenant: `?tenant_id=…`",
            ))
        }
    };
    if !s.tenant_exists(&tenant_id).await? {
        return Err(ApiError::unprocessable(
            "unknown_tenant",
            format!("tenant `{tenant_id}` does not exist"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let mime: mime::Mime = content_type.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_content_type",
            format!("`{content_type}` is not a media type (e.g. audio/wav)"),
        )
    })?;

    let tmp_dir = recordings_dir(&s).join(".partial");
    let final_dir = recordings_dir(&s).join(&tenant_id);
    for dir in [recordings_dir(&s), tmp_dir.clone(), final_dir.clone()] {
        tokio::task::spawn_blocking(move || crate::security::private_dir(&dir))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    }
    let tmp_path = tmp_dir.join(crate::model::ids::new_id("up"));
    let mut partial = PartialFile(Some(tmp_path.clone()));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp_path)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    let limit = s.config.max_recording_bytes;
    let idle = s.bodies.deadline;
    loop {
        // A stalled upload is given up (its partial file removed), not held open for ever.
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| {
                ApiError::bad_request(
                    "body_timeout",
                    format!("the upload stalled for {} s", idle.as_secs()),
                )
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("upload_interrupted", format!("the upload stopped: {e}"))
        })?;
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("recordings are limited to {limit} bytes (CALLHOOK_MAX_RECORDING_BYTES)"),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    drop(file);
    let final_path = final_dir.join(&file_id);
    tokio::fs::rename(&tmp_path, &final_path)
        .await
        .map_err(ApiError::internal)?;
    partial.0 = Some(final_path.clone());
    sync_dir(&final_dir).await;
    let meta = RecordingMeta {
        file_id: file_id.clone(),
        tenant_id: tenant_id.clone(),
        content_type: mime.to_string(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
        created_at: s.now_ms(),
    };
    s.store.put_recording(meta.clone()).await?;
    partial.0 = None; // kept
    Ok((StatusCode::CREATED, Json(meta)))
}

/// The link comes signed in a delivery's payload; it needs no token.
#[utoipa::path(get, path = "/v1/recordings/{file_id}/content", tag = "recordings", security(()),
    params(("file_id" = String, Path), ("tenant_id" = String, Query), ("expires" = i64, Query),
           ("signature" = String, Query)),
    responses((status = 200, description = "the file, with the media type it was uploaded with (Range requests answer 206)", content_type = "*/*"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 410, body = ErrorBody)))]
pub(crate) async fn download(
    State(s): State<AppState>,
    Path(file_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let (Some(tenant_id), Some(expires), Some(signature)) =
        (q.get("tenant_id"), q.get("expires"), q.get("signature"))
    else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the link is not signed; use the URL from the delivery as it is",
        )
        .into_response();
    };
    let now = s.now_ms();
    match s.links.verify(tenant_id, &file_id, expires, signature, now) {
        Ok(()) => {}
        Err(LinkError::BadSignature) => {
            return ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", "the link's signature does not match; use the URL from the delivery as it is")
                .into_response()
        }
        Err(LinkError::Expired) => {
            return ApiError::new(StatusCode::GONE, "link_expired", "the link has expired (links work for 30 minutes after the delivery attempt that carried them)")
                .into_response()
        }
    }
    let meta = match s.store.get_recording(tenant_id, &file_id).await {
        Ok(Some(m)) => m,
        Ok(None) => return ApiError::not_found(&format!("recording `{file_id}`")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mime: mime::Mime = meta
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let path = file_path(&s, &meta.tenant_id, &meta.file_id);
    match tower_http::services::ServeFile::new_with_mime(path, &mime)
        .oneshot(req)
        .await
    {
        Ok(resp) => {
            // The tenant chose the content type: the file is downloaded, never rendered on
            // this origin (an uploaded HTML page would otherwise run next to the console).
            let mut resp = resp.into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_DISPOSITION,
                header::HeaderValue::from_static("attachment"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("sandbox; default-src 'none'"),
            );
            resp
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}
