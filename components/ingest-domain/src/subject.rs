//! The NATS subjects ingest listens and publishes on.
//!
//! A device id may contain `.`, the NATS token separator, so `lab.3` reads on
//! `neongrid.readings.lab.3`, two tokens after the prefix. Subscribe with
//! [`READINGS_SUBSCRIPTION`] (`>` matches one or more tokens), not with `*`.
//! An id ending in `.` (allowed by the device-id rule) makes a subject with an
//! empty last token, which NATS refuses: such a device can only send on
//! another subject with the device named in each reading.

use telemetry_domain::{DeviceId, DeviceIdError};

/// Start of the subject a device sends readings on, `neongrid.readings.<device>`.
pub const READINGS_SUBJECT_PREFIX: &str = "neongrid.readings.";

/// The subscription that receives every device's readings.
pub const READINGS_SUBSCRIPTION: &str = "neongrid.readings.>";

/// Where a message goes whose readings name their own device(s), such as the
/// HTTP API's `POST /api/readings`: ingest takes each reading's device from the
/// reading itself. Ingest subscribes to it beside [`READINGS_SUBSCRIPTION`].
pub const INGEST_SUBJECT: &str = "neongrid.ingest";

/// The NATS queue group ingest's subscriptions join, so that with several
/// messaging providers in a lattice (one per edge host) each message is
/// delivered to one of them, not once per provider. The manifests subscribe
/// with `<subject>|<queue group>`.
pub const INGEST_QUEUE_GROUP: &str = "neongrid-ingest";

/// Where every rejection is published, as a [`RejectedMessage`](crate::RejectedMessage).
pub const REJECTED_SUBJECT: &str = "neongrid.rejected";

/// Start of the subject of a device's alerts, `neongrid.alerts.<device>`.
pub const ALERTS_SUBJECT_PREFIX: &str = "neongrid.alerts.";

/// `neongrid.readings.<device>`
pub fn readings_subject(device: &DeviceId) -> String {
    format!("{READINGS_SUBJECT_PREFIX}{device}")
}

/// `neongrid.alerts.<device>`
pub fn alert_subject(device: &DeviceId) -> String {
    format!("{ALERTS_SUBJECT_PREFIX}{device}")
}

/// The device a message's subject names: `Some` for `neongrid.readings.<device>`,
/// `None` for any other subject (the readings must then name their device), and
/// an error when the part after the prefix is not a valid device id.
pub fn subject_device(subject: &str) -> Result<Option<DeviceId>, DeviceIdError> {
    match subject.strip_prefix(READINGS_SUBJECT_PREFIX) {
        Some(device) => DeviceId::parse(device).map(Some),
        None => Ok(None),
    }
}

/// Where a message that names its devices in its readings (the HTTP API's
/// `POST /api/readings`) is sent: the device's own subject when every reading
/// names the same valid device that can be a subject token, so that the message
/// takes its place in that device's ordered delivery; [`INGEST_SUBJECT`]
/// otherwise (several devices, or a body ingest will refuse), where ingest
/// judges each reading by the device it names.
pub fn post_subject(body: &[u8]) -> String {
    let device_of =
        |reading: &serde_json::Value| reading.get("device")?.as_str().map(str::to_owned);
    let devices: Option<Vec<String>> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(readings)) if !readings.is_empty() => {
            readings.iter().map(device_of).collect()
        }
        Ok(reading @ serde_json::Value::Object(_)) => device_of(&reading).map(|d| vec![d]),
        _ => None,
    };
    let single = devices.and_then(|devices| {
        let first = devices.first()?.clone();
        devices.iter().all(|d| *d == first).then_some(first)
    });
    match single.map(|id| DeviceId::parse(&id)) {
        // An id ending in `.` would make an empty last token, which NATS refuses.
        Some(Ok(device)) if !device.as_str().ends_with('.') => readings_subject(&device),
        _ => INGEST_SUBJECT.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).unwrap()
    }

    #[test]
    fn subjects_follow_the_documented_layout() {
        assert_eq!(
            readings_subject(&device("thermo-17")),
            "neongrid.readings.thermo-17"
        );
        assert_eq!(
            alert_subject(&device("thermo-17")),
            "neongrid.alerts.thermo-17"
        );
        assert_eq!(REJECTED_SUBJECT, "neongrid.rejected");
        assert!(READINGS_SUBSCRIPTION.starts_with(READINGS_SUBJECT_PREFIX));
    }

    #[test]
    fn the_subject_names_the_device_dots_included() {
        assert_eq!(
            subject_device("neongrid.readings.thermo-17"),
            Ok(Some(device("thermo-17")))
        );
        assert_eq!(
            subject_device("neongrid.readings.lab.3"),
            Ok(Some(device("lab.3")))
        );
        let d = device("a.b_c-9");
        assert_eq!(subject_device(&readings_subject(&d)), Ok(Some(d)));
    }

    #[test]
    fn a_post_of_one_device_goes_to_its_subject_anything_else_to_ingest() {
        let one = br#"{"id":"r1","device":"lab.3","metric":"t","value":1}"#;
        assert_eq!(post_subject(one), "neongrid.readings.lab.3");
        let same = br#"[{"device":"d-1"},{"device":"d-1","id":"x"}]"#;
        assert_eq!(post_subject(same), "neongrid.readings.d-1");
        for other in [
            &br#"[{"device":"d-1"},{"device":"d-2"}]"#[..],
            br#"[{"device":"d-1"},{"id":"no device"}]"#,
            br#"{"id":"no device"}"#,
            br#"{"device":"a*"}"#,
            br#"{"device":"ends."}"#,
            br#"{"device":7}"#,
            b"[]",
            b"{not json",
            b"",
        ] {
            assert_eq!(
                post_subject(other),
                INGEST_SUBJECT,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn other_subjects_name_no_device() {
        for subject in [
            "neongrid.readings",
            "neongrid.bulk",
            "",
            "x.neongrid.readings.d",
        ] {
            assert_eq!(subject_device(subject), Ok(None), "{subject:?}");
        }
    }

    #[test]
    fn an_invalid_device_in_the_subject_is_an_error() {
        assert_eq!(
            subject_device("neongrid.readings."),
            Err(DeviceIdError::Empty)
        );
        assert!(subject_device("neongrid.readings.a*").is_err());
        assert!(subject_device("neongrid.readings.a..b").is_err());
    }
}
