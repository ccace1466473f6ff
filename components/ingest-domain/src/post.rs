//! How the HTTP API's `POST /api/readings` reaches ingest: as one message per device
//! on that device's subject, so that a posted reading takes its place in its device's
//! ordered delivery like any device's own publish.
//!
//! [`split_post`] cuts a posted body into [`Part`]s; the API requests each in turn and
//! folds the summaries back into one with [`Summary::merge_part`], whose rejection
//! indexes then point into the posted array.

use serde::Deserialize;
use serde_json::value::RawValue;
use telemetry_domain::DeviceId;

use crate::message::{MAX_MESSAGE_BYTES, MAX_READINGS_PER_MESSAGE};
use crate::subject::{readings_subject, INGEST_SUBJECT};
use crate::summary::Summary;

/// One message of a posted body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub subject: String,
    pub body: Vec<u8>,
    /// Where each element of this part's array sits in the posted array; `None`
    /// when the part is the posted body itself.
    pub positions: Option<Vec<usize>>,
}

/// Only the field the split needs; anything else about a reading is ingest's to judge.
#[derive(Deserialize)]
struct NamedDevice {
    device: Option<String>,
}

/// The device an element names, if it is a valid one (and so a subject token).
fn device_of(element: &RawValue) -> Option<DeviceId> {
    let named: NamedDevice = serde_json::from_str(element.get()).ok()?;
    DeviceId::parse(&named.device?).ok()
}

/// Cuts a posted body into the messages that carry it to ingest.
///
/// - An array naming two or more devices becomes one array per device, each on
///   `neongrid.readings.<device>`, in the order the devices first appear, every
///   element keeping its bytes and its order. Elements that name no valid device go
///   with the first device's part: ingest refuses them for their own fault there, as
///   it would anywhere.
/// - Anything else is one part, the body unchanged: on the device's subject when it
///   names exactly one valid device, else on [`INGEST_SUBJECT`], where ingest judges
///   it but stores nothing (`unordered_subject`). A body that ingest refuses whole
///   (too large, not JSON, an empty or too long array) is never split, so that it is
///   refused whole.
pub fn split_post(body: &[u8]) -> Vec<Part> {
    let whole = |subject: String| {
        vec![Part {
            subject,
            body: body.to_vec(),
            positions: None,
        }]
    };
    if body.len() > MAX_MESSAGE_BYTES {
        return whole(INGEST_SUBJECT.to_owned());
    }
    if let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(body) {
        if elements.is_empty() || elements.len() > MAX_READINGS_PER_MESSAGE {
            return whole(INGEST_SUBJECT.to_owned());
        }
        let devices: Vec<Option<DeviceId>> = elements.iter().map(|e| device_of(e)).collect();
        let mut order: Vec<&DeviceId> = Vec::new();
        for device in devices.iter().flatten() {
            if !order.contains(&device) {
                order.push(device);
            }
        }
        return match order[..] {
            [] => whole(INGEST_SUBJECT.to_owned()),
            [one] => whole(readings_subject(one)),
            _ => order
                .iter()
                .enumerate()
                .map(|(rank, device)| {
                    let positions: Vec<usize> = devices
                        .iter()
                        .enumerate()
                        .filter(|(_, named)| match named {
                            Some(named) => named == *device,
                            None => rank == 0,
                        })
                        .map(|(position, _)| position)
                        .collect();
                    let texts: Vec<&str> = positions.iter().map(|&p| elements[p].get()).collect();
                    Part {
                        subject: readings_subject(device),
                        body: format!("[{}]", texts.join(",")).into_bytes(),
                        positions: Some(positions),
                    }
                })
                .collect(),
        };
    }
    match serde_json::from_slice::<&RawValue>(body)
        .ok()
        .and_then(device_of)
    {
        Some(device) => whole(readings_subject(&device)),
        None => whole(INGEST_SUBJECT.to_owned()),
    }
}

impl Summary {
    /// Adds the summary of one [`Part`]; its rejection indexes are mapped back to
    /// positions in the posted array, and all rejections stay in posted order.
    pub fn merge_part(&mut self, part: Summary, positions: Option<&[usize]>) {
        self.accepted += part.accepted;
        self.rejected += part.rejected;
        self.duplicates += part.duplicates;
        self.alerts += part.alerts;
        self.rejections
            .extend(part.rejections.into_iter().map(|mut note| {
                if let (Some(index), Some(positions)) = (note.index, positions) {
                    note.index = positions.get(index).copied().or(Some(index));
                }
                note
            }));
        // Stable, so a whole-message note (no index) keeps its place first.
        self.rejections.sort_by_key(|note| note.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{Applied, RejectionNote};

    fn subjects(parts: &[Part]) -> Vec<&str> {
        parts.iter().map(|p| p.subject.as_str()).collect()
    }

    #[test]
    fn one_device_goes_whole_on_its_subject() {
        for body in [
            &br#"{"device":"lab.3","id":"x"}"#[..],
            br#"[{"device":"d-1"},{"device":"d-1","id":"x"}]"#,
            // The device-less element is refused on d-1's subject for its own fault.
            br#"[{"device":"d-1"},{"id":"no device"}]"#,
        ] {
            let parts = split_post(body);
            assert_eq!(parts.len(), 1, "{parts:?}");
            assert_eq!(parts[0].body, body);
            assert_eq!(parts[0].positions, None);
            assert!(parts[0].subject.starts_with("neongrid.readings."));
        }
        assert_eq!(
            split_post(br#"{"device":"lab.3"}"#)[0].subject,
            "neongrid.readings.lab.3"
        );
    }

    #[test]
    fn several_devices_split_in_order_keeping_each_elements_bytes() {
        let body = br#"[{"device":"b","v":1}, {"device":"a"},{"id":"none"},{"device":"b" ,"v":2},{"device":"ends."}]"#;
        let parts = split_post(body);
        assert_eq!(
            subjects(&parts),
            ["neongrid.readings.b", "neongrid.readings.a"]
        );
        assert_eq!(
            String::from_utf8(parts[0].body.clone()).unwrap(),
            r#"[{"device":"b","v":1},{"id":"none"},{"device":"b" ,"v":2},{"device":"ends."}]"#
        );
        assert_eq!(parts[0].positions.as_deref(), Some(&[0, 2, 3, 4][..]));
        assert_eq!(parts[1].body, br#"[{"device":"a"}]"#);
        assert_eq!(parts[1].positions.as_deref(), Some(&[1][..]));
    }

    #[test]
    fn what_names_no_device_or_is_refused_whole_is_not_split() {
        let too_many = format!(
            "[{}]",
            (0..=MAX_READINGS_PER_MESSAGE)
                .map(|i| format!(r#"{{"device":"d-{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let too_large = format!(
            r#"[{{"device":"a"}},{{"device":"b","pad":"{}"}}]"#,
            " ".repeat(MAX_MESSAGE_BYTES)
        );
        for body in [
            &br#"{"id":"no device"}"#[..],
            br#"[{"device":7},{"device":"a*"}]"#,
            br#"{"device":"ends."}"#,
            b"[]",
            b"{not json",
            br#"[{"device":"a"},{"device":"b"}"#,
            b"",
            too_many.as_bytes(),
            too_large.as_bytes(),
        ] {
            let parts = split_post(body);
            assert_eq!(
                subjects(&parts),
                [INGEST_SUBJECT],
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
            assert_eq!(parts[0].body, body);
        }
    }

    fn note(index: Option<usize>, code: &str) -> RejectionNote {
        RejectionNote {
            index,
            code: code.into(),
            reason: code.into(),
            retryable: false,
        }
    }

    #[test]
    fn merged_summaries_add_up_and_point_into_the_posted_array() {
        let mut first = Summary::default();
        first.record(Applied::Stored { alerted: true });
        first.record(Applied::Rejected(note(Some(1), "missing_field")));
        let mut second = Summary::default();
        second.record(Applied::Rejected(note(Some(0), "out_of_range")));
        second.record(Applied::Duplicate);

        let mut merged = Summary::default();
        merged.merge_part(first, Some(&[0, 2]));
        merged.merge_part(second, Some(&[1, 3]));
        assert_eq!(merged.counts(), (1, 2, 1, 1));
        let at: Vec<_> = merged
            .rejections
            .iter()
            .map(|n| (n.index, n.code.as_str()))
            .collect();
        assert_eq!(at, [(Some(1), "out_of_range"), (Some(2), "missing_field")]);

        let mut whole = Summary::default();
        let mut refused = Summary::default();
        refused.record(Applied::Rejected(note(None, "not_json")));
        whole.merge_part(refused.clone(), None);
        assert_eq!(whole, refused);
    }
}
