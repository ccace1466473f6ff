//! Adapts a committed wadm manifest to one test lattice without changing what it deploys:
//! `file://` images become absolute (the host resolves them against its own working
//! directory) and the HTTP listen address moves to a free port.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_yaml::Value;

/// The link config key the builtin HTTP server reads its listen address from.
const HTTP_ADDRESS_KEY: &str = "address";

/// The link config key the builtin NATS messaging provider reads its server URLs from.
const NATS_URIS_KEY: &str = "cluster_uris";

pub struct Manifest {
    doc: Value,
}

/// A manifest file as wadm itself reads it, to reason about what it deploys.
pub fn wadm_manifest(path: &Path) -> Result<wadm_types::Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a wadm manifest", path.display()))
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Manifest { doc })
    }

    pub fn name(&self) -> Result<String> {
        self.doc["metadata"]["name"]
            .as_str()
            .map(str::to_string)
            .context("manifest has no metadata.name")
    }

    fn components_mut(&mut self) -> Result<&mut Vec<Value>> {
        self.doc["spec"]["components"]
            .as_sequence_mut()
            .context("manifest has no spec.components")
    }

    /// Rewrites `file://./x` images to `file://<root>/x`.
    pub fn absolutize_images(&mut self, root: &Path) -> Result<&mut Self> {
        for c in self.components_mut()? {
            let image = c.get_mut("properties").and_then(|p| p.get_mut("image"));
            if let Some(image) = image {
                if let Some(rel) = image.as_str().and_then(|s| s.strip_prefix("file://./")) {
                    *image = Value::from(format!("file://{}", root.join(rel).display()));
                }
            }
        }
        Ok(self)
    }

    /// Points every HTTP server link's `address` at `addr`; fails if there is none, since
    /// a test that silently kept port 8000 would talk to someone else's server.
    pub fn set_http_address(&mut self, addr: &str) -> Result<&mut Self> {
        self.set_link_config_value(HTTP_ADDRESS_KEY, addr)
    }

    /// Points every messaging link's `cluster_uris` at `uris` (the test lattice's own
    /// NATS server); fails if there is none, since the builtin provider would otherwise
    /// connect to whatever listens on the default port.
    pub fn set_nats_uris(&mut self, uris: &str) -> Result<&mut Self> {
        self.set_link_config_value(NATS_URIS_KEY, uris)
    }

    /// Sets `key` to `value` wherever a link's source or target config has it.
    fn set_link_config_value(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let mut found = 0;
        // Walk with `get_mut`: indexing a serde_yaml value mutably inserts missing keys,
        // which would add empty `source` blocks to traits that wadm then rejects.
        for c in self.components_mut()? {
            let traits = c.get_mut("traits").and_then(Value::as_sequence_mut);
            for t in traits.into_iter().flatten() {
                let Some(props) = t.get_mut("properties") else {
                    continue;
                };
                for side in ["source", "target"] {
                    let configs = props
                        .get_mut(side)
                        .and_then(|s| s.get_mut("config"))
                        .and_then(Value::as_sequence_mut);
                    for cfg in configs.into_iter().flatten() {
                        let props = cfg.get_mut("properties").and_then(Value::as_mapping_mut);
                        if let Some(v) = props.and_then(|p| p.get_mut(key)) {
                            *v = Value::from(value);
                            found += 1;
                        }
                    }
                }
            }
        }
        if found == 0 {
            bail!("manifest has no link config with an `{key}` to rewrite");
        }
        Ok(self)
    }

    /// The component named `name`, or an error naming the manifest's components.
    fn component_mut(&mut self, name: &str) -> Result<&mut Value> {
        let components = self.components_mut()?;
        let names: Vec<String> = components
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        components
            .iter_mut()
            .find(|c| c["name"].as_str() == Some(name))
            .with_context(|| format!("manifest has no component {name:?}; it has {names:?}"))
    }

    /// Sets `key` in the component's own (`properties.config`) config named `config`,
    /// e.g. a provider's `url`; fails if the manifest has no such config.
    pub fn set_component_config(
        &mut self,
        component: &str,
        config: &str,
        key: &str,
        value: &str,
    ) -> Result<&mut Self> {
        let props = self
            .component_config_mut(component, config)?
            .get_mut("properties")
            .and_then(Value::as_mapping_mut)
            .with_context(|| format!("config {config:?} has no properties"))?;
        props.insert(Value::from(key), Value::from(value));
        Ok(self)
    }

    /// The value of `key` in the component's own config named `config`.
    pub fn component_config_value(
        &mut self,
        component: &str,
        config: &str,
        key: &str,
    ) -> Result<String> {
        self.component_config_mut(component, config)?["properties"][key]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("config {config:?} of {component:?} has no {key:?}"))
    }

    /// Takes the properties out of the component's config named `config` and returns
    /// them: wadm then leaves that config to whoever writes it (it neither puts nor
    /// deletes it), so a test can change it by hand while the component runs.
    pub fn take_component_config(
        &mut self,
        component: &str,
        config: &str,
    ) -> Result<Vec<(String, String)>> {
        let entry = self.component_config_mut(component, config)?;
        let props = entry
            .as_mapping_mut()
            .and_then(|entry| entry.remove("properties"))
            .with_context(|| format!("config {config:?} has no properties"))?;
        let props = props
            .as_mapping()
            .with_context(|| format!("config {config:?}'s properties are not a map"))?;
        props
            .iter()
            .map(|(k, v)| match (k.as_str(), v.as_str()) {
                (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                _ => bail!("config {config:?} has a property that is not a string: {k:?}"),
            })
            .collect()
    }

    /// The component's own (`properties.config`) config entry named `config`.
    fn component_config_mut(&mut self, component: &str, config: &str) -> Result<&mut Value> {
        let configs = self
            .component_mut(component)?
            .get_mut("properties")
            .and_then(|p| p.get_mut("config"))
            .and_then(Value::as_sequence_mut)
            .with_context(|| format!("component {component:?} has no config"))?;
        configs
            .iter_mut()
            .find(|c| c["name"].as_str() == Some(config))
            .with_context(|| format!("component {component:?} has no config {config:?}"))
    }

    /// Replaces the component's image.
    pub fn set_image(&mut self, component: &str, image: &str) -> Result<&mut Self> {
        let image_slot = self
            .component_mut(component)?
            .get_mut("properties")
            .and_then(|p| p.get_mut("image"))
            .with_context(|| format!("component {component:?} has no image"))?;
        *image_slot = Value::from(image);
        Ok(self)
    }

    /// Places the component by one host label: its spreadscaler's spread becomes
    /// `[{name, requirements: {label: "true"}}]`.
    pub fn place_by_label(&mut self, component: &str, label: &str) -> Result<&mut Self> {
        self.place_by_labels(component, &[label])
    }

    /// Places the component by several host labels, one spread each (wadm divides the
    /// instances among them): `[{name, requirements: {label: "true"}}, ...]`, each spread
    /// named after its label's last segment (`core` for `neongrid.core`), as wadm.yaml
    /// names them: wadm tells a spread's instances by its name.
    pub fn place_by_labels(&mut self, component: &str, labels: &[&str]) -> Result<&mut Self> {
        let spreads: Vec<(&str, &str, &str)> = labels
            .iter()
            .map(|label| (label.rsplit('.').next().unwrap_or(label), *label, "true"))
            .collect();
        self.set_spread(component, &spreads)
    }

    /// Places the component on the hosts whose `label` is `value`, in one spread named
    /// after the value.
    pub fn place_where(&mut self, component: &str, label: &str, value: &str) -> Result<&mut Self> {
        self.set_spread(component, &[(value, label, value)])
    }

    /// Sets the component's spreadscaler's spread: one `(name, label, value)` each.
    fn set_spread(&mut self, component: &str, spreads: &[(&str, &str, &str)]) -> Result<&mut Self> {
        let traits = self
            .component_mut(component)?
            .get_mut("traits")
            .and_then(Value::as_sequence_mut)
            .with_context(|| format!("component {component:?} has no traits"))?;
        let scaler = traits
            .iter_mut()
            .find(|t| t["type"].as_str() == Some("spreadscaler"))
            .and_then(|t| t.get_mut("properties"))
            .and_then(Value::as_mapping_mut)
            .with_context(|| format!("component {component:?} has no spreadscaler"))?;
        let spread: String = spreads
            .iter()
            .map(|(name, label, value)| {
                format!("- name: {name}\n  requirements:\n    {label}: \"{value}\"\n")
            })
            .collect();
        scaler.insert(Value::from("spread"), serde_yaml::from_str(&spread)?);
        Ok(self)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_yaml::to_string(&self.doc)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}
