//! Extractors that reject bad input with the API's own errors, naming what was wrong.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use onmemos_core::api::ErrorCode;
use onmemos_core::{Error, Principal};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body: `application/json`, within the body limit, of the right shape, and allowed by
/// the type's schema in the OpenAPI document. Errors name the field (`resources.cpu_millis`).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + utoipa::ToSchema> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        if !(mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")) {
            return Err(Error::with_code(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON (Content-Type: application/json)",
            )
            .into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status().as_u16() == 413 {
                Error::with_code(
                    ErrorCode::PayloadTooLarge,
                    "request body is larger than the server accepts",
                )
            } else {
                Error::with_code(ErrorCode::MalformedBody, rejection.body_text())
            }
        })?;
        let body = parse_json(&bytes)?;
        // What serde took must also be what the document allows (see crate::openapi).
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError(malformed(&e)))?;
        crate::openapi::check_body(&T::name(), &value)?;
        Ok(ApiJson(body))
    }
}

/// Parses a JSON body, telling syntax errors from shape errors.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object: serde would also take a struct as a positional array.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Error::invalid("", "the request body must be a JSON object").into());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de);
    let err = match parsed {
        Ok(value) => {
            de.end().map_err(|e| malformed(&e))?;
            return Ok(value);
        }
        Err(err) => err,
    };
    // JSON has one kind of number: `3.0` is the integer 3 (as JSON Schema says), and a
    // client's serializer may well write it so. Such a body gets a second reading.
    if !(err.inner().is_syntax() || err.inner().is_eof())
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && integral_floats_to_integers(&mut value)
    {
        return serde_path_to_error::deserialize(value).map_err(|e| shape_error(e).into());
    }
    Err(shape_error(err).into())
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        malformed(&inner)
    } else if path == "." {
        Error::invalid("", format!("invalid request body: {inner}"))
    } else {
        Error::invalid(path.clone(), format!("{path}: {inner}"))
    }
}

/// Rewrites every number written with a fraction of zero that an integer can hold (`3.0`) as
/// that integer; whether it changed anything.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return false };
            // Within ±2^53 every integer is exact in a double.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if f.fract() == 0.0 && f.abs() <= EXACT {
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *value = Value::from(i);
                true
            } else {
                false
            }
        }
        // Every element is visited: no short-circuit.
        Value::Array(items) => items
            .iter_mut()
            .map(integral_floats_to_integers)
            .fold(false, |a, b| a | b),
        Value::Object(map) => map
            .values_mut()
            .map(integral_floats_to_integers)
            .fold(false, |a, b| a | b),
        _ => false,
    }
}

fn malformed(err: &serde_json::Error) -> Error {
    Error::with_code(
        ErrorCode::MalformedBody,
        format!("request body is not valid JSON: {err}"),
    )
}

/// Query parameters, rejecting unknown ones and naming the bad one.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let err = Error::with_code(
                    ErrorCode::InvalidParameter,
                    format!("invalid query string: {inner}"),
                );
                ApiError(if path == "." {
                    err
                } else {
                    err.with_context("field", path)
                })
            })
    }
}

/// A path parameter parsed with `FromStr` (typed ids); a bad one is a 400 naming the parameter.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for ApiPath<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError(Error::with_code(ErrorCode::InvalidParameter, e.body_text())))?;
        let Some((name, value)) = params.iter().last() else {
            return Err(ApiError(Error::internal("route has no path parameter")));
        };
        value.parse::<T>().map(ApiPath).map_err(|e| {
            ApiError(
                Error::with_code(ErrorCode::InvalidParameter, format!("{name}: {e}"))
                    .with_context("field", name.to_owned()),
            )
        })
    }
}

/// What a route needs of its caller beyond a valid key, checked by [`Authorized`] from the
/// request's head — before its parameters or body are read — so a key without that authority
/// gets 403 and never a hint about what the body should have held.
pub(crate) trait Needs: Send + Sync + 'static {
    /// `Ok` if `caller` may use the route.
    fn check(caller: &Principal) -> onmemos_core::Result<()>;
}

/// The authorities routes need: one marker type each.
pub(crate) mod needs {
    use onmemos_core::Principal;
    use onmemos_core::model::Scope;

    macro_rules! scopes {
        ($($(#[$doc:meta])* $name:ident => $scope:ident,)+) => {$(
            $(#[$doc])*
            pub(crate) struct $name;
            impl super::Needs for $name {
                fn check(caller: &Principal) -> onmemos_core::Result<()> {
                    caller.require(Scope::$scope)
                }
            }
        )+};
    }

    scopes! {
        /// `workspaces:write`.
        WorkspacesWrite => WorkspacesWrite,
        /// `templates:write`.
        TemplatesWrite => TemplatesWrite,
        /// `keys:write`.
        KeysWrite => KeysWrite,
        /// `sessions:write`.
        SessionsWrite => SessionsWrite,
        /// `storage:read` (what every presigned URL needs at least).
        StorageRead => StorageRead,
        /// `storage:write`.
        StorageWrite => StorageWrite,
        /// `credits:read`.
        CreditsRead => CreditsRead,
        /// `optimizer:run`.
        OptimizerRun => OptimizerRun,
    }

    /// An administrator holding the `admin` scope.
    pub(crate) struct Admin;
    impl super::Needs for Admin {
        fn check(caller: &Principal) -> onmemos_core::Result<()> {
            caller.require_admin()
        }
    }
}

/// The authenticated caller, holding what `N` says the route needs.
pub(crate) struct Authorized<N>(pub Principal, pub std::marker::PhantomData<N>);

impl<N: Needs> FromRequestParts<AppState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        N::check(&caller)?;
        Ok(Self(caller, std::marker::PhantomData))
    }
}

/// The authenticated caller, from `Authorization: Bearer <key>` or `X-API-Key: <key>`.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Auth(principal.clone()));
        }
        let secret = secret_from(parts)?;
        let principal = state.engine.api_keys().authenticate(secret).await?;
        if let Some(key) = principal.key_id() {
            state.rates.check(key)?;
        }
        tracing::Span::current().record("user", tracing::field::display(principal.user_id()));
        parts.extensions.insert(principal.clone());
        Ok(Auth(principal))
    }
}

fn secret_from(parts: &Parts) -> Result<&str, ApiError> {
    let count = |name: &str| parts.headers.get_all(name).iter().count();
    if count("authorization") + count("x-api-key") > 1 {
        return Err(ApiError(Error::invalid(
            "Authorization",
            "send one credential: either one `Authorization: Bearer <key>` or one `X-API-Key` header",
        )));
    }
    let header_text = |name| {
        parts.headers.get(name).map(|v| {
            v.to_str().map_err(|_| {
                ApiError(Error::with_code(
                    ErrorCode::InvalidApiKey,
                    "the credentials header is not valid text",
                ))
            })
        })
    };
    if let Some(value) = header_text(header::AUTHORIZATION) {
        let value = value?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError(Error::with_code(
                ErrorCode::InvalidApiKey,
                "use `Authorization: Bearer <api key>`",
            )));
        }
        return Ok(token.trim());
    }
    if let Some(value) = header_text(header::HeaderName::from_static("x-api-key")) {
        return value;
    }
    Err(ApiError(Error::with_code(
        ErrorCode::MissingApiKey,
        "this endpoint needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
    )))
}
