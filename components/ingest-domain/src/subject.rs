//! The NATS subjects ingest listens and publishes on.
//!
//! A device id may contain `.`, the NATS token separator, so `lab.3` reads on
//! `neongrid.readings.lab.3`, two tokens after the prefix. Subscribe with
//! [`READINGS_SUBSCRIPTION`] (`>` matches one or more tokens), not with `*`.
//! The device-id rule (no empty token) makes every valid id a valid subject.

use telemetry_domain::{DeviceId, DeviceIdError};

/// Start of the subject a device sends readings on, `neongrid.readings.<device>`.
pub const READINGS_SUBJECT_PREFIX: &str = "neongrid.readings.";

/// The subscription that receives every device's readings.
pub const READINGS_SUBSCRIPTION: &str = "neongrid.readings.>";

/// Where the HTTP API sends a posted body that names no valid device, so that
/// ingest still says what is wrong with it. Ingest subscribes to it beside
/// [`READINGS_SUBSCRIPTION`] and stores nothing that arrives on it: a reading is
/// stored only from its device's subject, in that device's order.
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
