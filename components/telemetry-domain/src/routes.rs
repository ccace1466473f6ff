//! Which operation a method, path and query ask for.

use crate::device::DeviceId;
use crate::error::ApiError;

pub const DASHBOARD_PATH: &str = "/";
pub const HEALTH_PATH: &str = "/healthz";
pub const DEVICES_PATH: &str = "/api/devices";
pub const READINGS_PATH: &str = "/api/readings";

/// Prefix of the per-device routes; the device id is the next path segment.
pub const DEVICES_PREFIX: &str = "/api/devices/";

/// The path segment after the device id that addresses its history.
pub const HISTORY_SEGMENT: &str = "history";

pub const DEVICE_PATTERN: &str = "/api/devices/{id}";
pub const HISTORY_PATTERN: &str = "/api/devices/{id}/history";

pub const METHOD_GET: &str = "GET";
pub const METHOD_POST: &str = "POST";

/// The history query's one parameter.
pub const LIMIT_PARAM: &str = "limit";

/// Readings a history query returns when it names no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// Most readings one history query may ask for, so that it stays one bounded
/// batch-get from the archive.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// Every route, for the 404 message.
pub const ROUTES_SUMMARY: &str = "GET / (dashboard), GET /healthz, GET /api/devices, \
GET /api/devices/{id}, GET /api/devices/{id}/history?limit=N and POST /api/readings";

/// A request the API knows how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the dashboard page.
    Dashboard,
    /// `GET /healthz`
    Health,
    /// `GET /api/devices`
    Devices,
    /// `GET /api/devices/{id}`
    Device(DeviceId),
    /// `GET /api/devices/{id}/history?limit=N`
    History { device: DeviceId, limit: usize },
    /// `POST /api/readings`: the body goes to ingest as a message.
    PostReadings,
}

/// Resolves a request to a [`Route`].
///
/// `path` is the path without the query string, `query` the part after `?`.
/// The path shape is matched first, then the method, then the device id and
/// the query, so a client learns about the most basic mistake first: an
/// unknown path is 404 whatever the method.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let not_allowed = |pattern, allow| ApiError::MethodNotAllowed {
        method: method.to_owned(),
        pattern,
        allow,
    };
    let Some(shape) = shape(path) else {
        return Err(ApiError::NoRoute {
            method: method.to_owned(),
            path: path.to_owned(),
        });
    };
    let (pattern, allow) = match &shape {
        Shape::Dashboard => (DASHBOARD_PATH, METHOD_GET),
        Shape::Health => (HEALTH_PATH, METHOD_GET),
        Shape::Devices => (DEVICES_PATH, METHOD_GET),
        Shape::Device(_) => (DEVICE_PATTERN, METHOD_GET),
        Shape::History(_) => (HISTORY_PATTERN, METHOD_GET),
        Shape::Readings => (READINGS_PATH, METHOD_POST),
    };
    if method != allow {
        return Err(not_allowed(pattern, allow));
    }
    Ok(match shape {
        Shape::Dashboard => Route::Dashboard,
        Shape::Health => Route::Health,
        Shape::Devices => Route::Devices,
        Shape::Device(id) => Route::Device(DeviceId::parse(id)?),
        Shape::History(id) => Route::History {
            device: DeviceId::parse(id)?,
            limit: history_limit(query)?,
        },
        Shape::Readings => Route::PostReadings,
    })
}

enum Shape<'a> {
    Dashboard,
    Health,
    Devices,
    Device(&'a str),
    History(&'a str),
    Readings,
}

fn shape(path: &str) -> Option<Shape<'_>> {
    match path {
        DASHBOARD_PATH => return Some(Shape::Dashboard),
        HEALTH_PATH => return Some(Shape::Health),
        DEVICES_PATH => return Some(Shape::Devices),
        READINGS_PATH => return Some(Shape::Readings),
        _ => {}
    }
    let rest = path.strip_prefix(DEVICES_PREFIX)?;
    match rest.split_once('/') {
        None => Some(Shape::Device(rest)),
        Some((id, HISTORY_SEGMENT)) => Some(Shape::History(id)),
        Some(_) => None,
    }
}

/// The `limit` of a history query: [`DEFAULT_HISTORY_LIMIT`] when absent,
/// otherwise a whole number in `1..=`[`MAX_HISTORY_LIMIT`]. Any other
/// parameter is refused rather than ignored, so a misspelt `limit` is noticed.
pub fn history_limit(query: Option<&str>) -> Result<usize, ApiError> {
    let mut limit = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != LIMIT_PARAM {
            return Err(ApiError::BadQuery {
                detail: format!("unknown query parameter `{name}`; expected only `{LIMIT_PARAM}`"),
            });
        }
        let parsed = value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadQuery {
                detail: format!(
                    "`{LIMIT_PARAM}` is {}; expected a whole number from 1 to {MAX_HISTORY_LIMIT}",
                    crate::excerpt::quoted(value)
                ),
            })?;
        limit = Some(parsed);
    }
    Ok(limit.unwrap_or(DEFAULT_HISTORY_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceIdError;

    fn id(text: &str) -> DeviceId {
        DeviceId::parse(text).unwrap()
    }

    #[test]
    fn known_routes_resolve() {
        assert_eq!(route("GET", "/", None).unwrap(), Route::Dashboard);
        assert_eq!(route("GET", "/healthz", None).unwrap(), Route::Health);
        assert_eq!(route("GET", "/api/devices", None).unwrap(), Route::Devices);
        assert_eq!(
            route("GET", "/api/devices/sensor-1", None).unwrap(),
            Route::Device(id("sensor-1"))
        );
        assert_eq!(
            route("GET", "/api/devices/lab.3/history", Some("limit=7")).unwrap(),
            Route::History {
                device: id("lab.3"),
                limit: 7
            }
        );
        assert_eq!(
            route("GET", "/api/devices/a/history", None).unwrap(),
            Route::History {
                device: id("a"),
                limit: DEFAULT_HISTORY_LIMIT
            }
        );
        assert_eq!(
            route("POST", "/api/readings", None).unwrap(),
            Route::PostReadings
        );
    }

    #[test]
    fn unknown_paths_are_404_whatever_the_method() {
        for (method, path) in [
            ("GET", "/index.html"),
            ("GET", "/healthz/"),
            ("GET", "/api/devices/a/readings"),
            ("GET", "/api/devices/a/history/x"),
            ("GET", "/api/readings/x"),
            ("DELETE", "/nope"),
        ] {
            let err = route(method, path, None).unwrap_err();
            assert_eq!(err.status(), 404, "{method} {path}");
        }
        assert_eq!(
            route("GET", "/nope", None).unwrap_err().to_string(),
            format!("no route for GET \"/nope\"; the API serves {ROUTES_SUMMARY}")
        );
    }

    #[test]
    fn wrong_methods_are_405_with_the_allowed_one() {
        let cases = [
            ("POST", "/healthz", "GET"),
            ("POST", "/", "GET"),
            ("POST", "/api/devices", "GET"),
            ("GET", "/api/readings", "POST"),
            ("PUT", "/api/readings", "POST"),
            ("POST", "/api/devices/a", "GET"),
            ("DELETE", "/api/devices/a/history", "GET"),
        ];
        for (method, path, allow) in cases {
            let err = route(method, path, None).unwrap_err();
            assert_eq!(err.status(), 405, "{method} {path}");
            assert_eq!(err.allow(), Some(allow), "{method} {path}");
        }
        assert_eq!(
            route("DELETE", "/api/devices/a", None)
                .unwrap_err()
                .to_string(),
            "method DELETE is not allowed on /api/devices/{id}; expected GET"
        );
    }

    #[test]
    fn bad_device_ids_are_400() {
        let err = route("GET", "/api/devices/a%20b", None).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(matches!(
            err,
            ApiError::BadDeviceId(DeviceIdError::ForbiddenChar { ch: '%', .. })
        ));
        assert_eq!(
            route("GET", "/api/devices//history", None).unwrap_err(),
            ApiError::BadDeviceId(DeviceIdError::Empty)
        );
        assert_eq!(
            route("GET", "/api/devices/", None).unwrap_err(),
            ApiError::BadDeviceId(DeviceIdError::Empty)
        );
    }

    #[test]
    fn history_limits_are_checked_and_named() {
        assert_eq!(history_limit(Some("")), Ok(DEFAULT_HISTORY_LIMIT));
        assert_eq!(history_limit(Some("limit=1")), Ok(1));
        assert_eq!(history_limit(Some("limit=1000")), Ok(1000));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=x",
            "limit=",
            "limit",
        ] {
            let err = history_limit(Some(bad)).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert!(
                err.to_string()
                    .contains("expected a whole number from 1 to 1000"),
                "{bad}: {err}"
            );
        }
        let err = history_limit(Some("limt=5")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad query: unknown query parameter `limt`; expected only `limit`"
        );
    }
}
