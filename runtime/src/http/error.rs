//! Errors of the API: JSON with a stable code and a message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cluster::DirectoryError;
use serde::Serialize;
use utoipa::ToSchema;

/// The stable error codes; see `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    BadRequest,
    InvalidBody,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

impl Code {
    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest | Code::InvalidBody => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: Code,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        use twins::actor::TwinError;
        let code = match &e {
            DirectoryError::Unknown(_) => Code::NotFound,
            DirectoryError::NotRunning(_) | DirectoryError::Timeout { .. } => Code::Unavailable,
            DirectoryError::Twin(TwinError::UnknownAlarm { .. }) => Code::NotFound,
            DirectoryError::Twin(TwinError::Alarm { .. }) => Code::Conflict,
            DirectoryError::Twin(TwinError::NotRunning(_)) => Code::Unavailable,
            DirectoryError::Store { .. } => Code::Internal,
            DirectoryError::NoStore(_) => Code::NotFound,
        };
        ApiError::new(code, e.to_string())
    }
}

/// The JSON body extractor's rejections, as API errors.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        let code = match &r {
            _ if timed_out(&r) => Code::RequestTimeout,
            J::MissingJsonContentType(_) => Code::UnsupportedMediaType,
            J::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Code::PayloadTooLarge
            }
            J::BytesRejection(b) if b.status() == StatusCode::REQUEST_TIMEOUT => {
                Code::RequestTimeout
            }
            _ => Code::InvalidBody,
        };
        let message = match code {
            Code::PayloadTooLarge => "the request body is larger than 1 MiB".to_string(),
            Code::RequestTimeout => "the request body did not arrive in time".to_string(),
            _ => format!("invalid request body: {}", r.body_text()),
        };
        ApiError::new(code, message)
    }
}

/// Whether reading the body failed because the client was too slow.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = s.source();
    }
    false
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query: {}", r.body_text()))
    }
}
