//! Where the API keeps its data in the key-value store.
//!
//! Layout, inside the bucket [`BUCKET`]:
//!
//! | key                    | value                                           |
//! |------------------------|-------------------------------------------------|
//! | `device/<id>/latest`   | the device's latest [`Reading`](crate::Reading) as JSON |
//! | `device/<id>/count`    | how many readings the device has sent, kept by `wasi:keyvalue/atomics` |
//!
//! Every device key starts with [`DEVICE_KEY_PREFIX`], so listing that prefix
//! finds every device. Device ids can't contain `/`, so no id can reach into
//! another device's keys.

use crate::device::DeviceId;

/// The `wasi:keyvalue` bucket identifier the API opens. Our key-value providers
/// treat it as a namespace, so the whole API shares one.
pub const BUCKET: &str = "neongrid";

/// The start of every key that belongs to a device.
pub const DEVICE_KEY_PREFIX: &str = "device/";

/// Last segment of the key holding a device's latest reading.
pub const LATEST_SUFFIX: &str = "latest";

/// Last segment of the key holding a device's reading count.
pub const COUNT_SUFFIX: &str = "count";

/// `device/<id>/latest`
pub fn latest_reading_key(device: &DeviceId) -> String {
    device_key(device, LATEST_SUFFIX)
}

/// `device/<id>/count`
pub fn reading_count_key(device: &DeviceId) -> String {
    device_key(device, COUNT_SUFFIX)
}

fn device_key(device: &DeviceId, suffix: &str) -> String {
    format!("{DEVICE_KEY_PREFIX}{device}/{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let device = DeviceId::parse("sensor-1.a").unwrap();
        assert_eq!(latest_reading_key(&device), "device/sensor-1.a/latest");
        assert_eq!(reading_count_key(&device), "device/sensor-1.a/count");
        assert!(latest_reading_key(&device).starts_with(DEVICE_KEY_PREFIX));
    }

    #[test]
    fn different_devices_never_share_keys() {
        let a = DeviceId::parse("a").unwrap();
        let ab = DeviceId::parse("a-b").unwrap();
        assert_ne!(latest_reading_key(&a), latest_reading_key(&ab));
        assert_ne!(reading_count_key(&a), latest_reading_key(&a));
    }
}
