//! Which operation a method and path ask for.

use crate::device::DeviceId;
use crate::error::ApiError;

pub const HEALTH_PATH: &str = "/healthz";

/// Prefix of the device routes; the device id is the next path segment.
pub const DEVICES_PREFIX: &str = "/api/devices/";

/// The path segment after the device id that addresses its readings.
pub const READINGS_SEGMENT: &str = "readings";

pub const DEVICE_PATTERN: &str = "/api/devices/{id}";
pub const READINGS_PATTERN: &str = "/api/devices/{id}/readings";

pub const METHOD_GET: &str = "GET";
pub const METHOD_POST: &str = "POST";

/// Every route, for the 404 message.
pub const ROUTES_SUMMARY: &str =
    "GET /healthz, POST /api/devices/{id}/readings and GET /api/devices/{id}";

/// A request the API knows how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Health,
    /// `POST /api/devices/{id}/readings`
    RecordReading(DeviceId),
    /// `GET /api/devices/{id}`
    DeviceSummary(DeviceId),
}

/// Resolves a request to a [`Route`].
///
/// `path` is the path without the query string. The path shape is matched
/// first, then the method, then the device id, so a client learns about the
/// most basic mistake first: an unknown path is 404 whatever the method.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let not_allowed = |pattern, allow| ApiError::MethodNotAllowed {
        method: method.to_owned(),
        pattern,
        allow,
    };
    match shape(path) {
        Some(Shape::Health) if method == METHOD_GET => Ok(Route::Health),
        Some(Shape::Health) => Err(not_allowed(HEALTH_PATH, METHOD_GET)),
        Some(Shape::Readings(id)) if method == METHOD_POST => {
            Ok(Route::RecordReading(DeviceId::parse(id)?))
        }
        Some(Shape::Readings(_)) => Err(not_allowed(READINGS_PATTERN, METHOD_POST)),
        Some(Shape::Device(id)) if method == METHOD_GET => {
            Ok(Route::DeviceSummary(DeviceId::parse(id)?))
        }
        Some(Shape::Device(_)) => Err(not_allowed(DEVICE_PATTERN, METHOD_GET)),
        None => Err(ApiError::NoRoute {
            method: method.to_owned(),
            path: path.to_owned(),
        }),
    }
}

enum Shape<'a> {
    Health,
    Readings(&'a str),
    Device(&'a str),
}

fn shape(path: &str) -> Option<Shape<'_>> {
    if path == HEALTH_PATH {
        return Some(Shape::Health);
    }
    let rest = path.strip_prefix(DEVICES_PREFIX)?;
    match rest.split_once('/') {
        None => Some(Shape::Device(rest)),
        Some((id, READINGS_SEGMENT)) => Some(Shape::Readings(id)),
        Some(_) => None,
    }
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
        assert_eq!(route("GET", "/healthz").unwrap(), Route::Health);
        assert_eq!(
            route("POST", "/api/devices/sensor-1/readings").unwrap(),
            Route::RecordReading(id("sensor-1"))
        );
        assert_eq!(
            route("GET", "/api/devices/sensor-1").unwrap(),
            Route::DeviceSummary(id("sensor-1"))
        );
    }

    #[test]
    fn unknown_paths_are_404_whatever_the_method() {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/healthz/"),
            ("GET", "/api/devices"),
            ("GET", "/api/devices/a/readings/x"),
            ("GET", "/api/devices/a/other"),
            ("DELETE", "/nope"),
        ] {
            let err = route(method, path).unwrap_err();
            assert_eq!(err.status(), 404, "{method} {path}");
        }
        assert_eq!(
            route("GET", "/nope").unwrap_err().to_string(),
            format!("no route for GET \"/nope\"; the API serves {ROUTES_SUMMARY}")
        );
    }

    #[test]
    fn wrong_methods_are_405_with_the_allowed_one() {
        let cases = [
            ("POST", "/healthz", "GET"),
            ("GET", "/api/devices/a/readings", "POST"),
            ("PUT", "/api/devices/a/readings", "POST"),
            ("POST", "/api/devices/a", "GET"),
            ("DELETE", "/api/devices/a", "GET"),
        ];
        for (method, path, allow) in cases {
            let err = route(method, path).unwrap_err();
            assert_eq!(err.status(), 405, "{method} {path}");
            assert_eq!(err.allow(), Some(allow), "{method} {path}");
        }
        assert_eq!(
            route("DELETE", "/api/devices/a").unwrap_err().to_string(),
            "method DELETE is not allowed on /api/devices/{id}; expected GET"
        );
    }

    #[test]
    fn bad_device_ids_are_400() {
        let err = route("GET", "/api/devices/a%20b").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(matches!(
            err,
            ApiError::BadDeviceId(DeviceIdError::ForbiddenChar { ch: '%', .. })
        ));
        assert_eq!(
            route("POST", "/api/devices//readings").unwrap_err(),
            ApiError::BadDeviceId(DeviceIdError::Empty)
        );
        assert_eq!(
            route("GET", "/api/devices/").unwrap_err(),
            ApiError::BadDeviceId(DeviceIdError::Empty)
        );
    }
}
