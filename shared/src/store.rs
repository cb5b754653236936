//! Values shared by every worker of an Envoy (proxy-wasm shared data),
//! behind a trait so the logic that reads and writes them runs natively in
//! tests, with races injected.

/// Where shared values live, with compare-and-swap: proxy-wasm shared data
/// in the filters, a map in tests.
pub trait CounterStore {
    /// The value and its version.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes if `version` still matches; `Ok(false)` when another worker
    /// wrote first, `Err` when the store refused the write.
    fn set(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<bool, String>;
}

/// Rewrites a value with `update` until no other worker wrote in between;
/// None when the store refused or others kept winning `attempts` times.
pub fn update(store: &dyn CounterStore, key: &str, attempts: usize, mut update: impl FnMut(Option<&[u8]>) -> Vec<u8>) -> Option<Vec<u8>> {
    for _ in 0..attempts {
        let (value, version) = store.get(key);
        let new = update(value.as_deref());
        match store.set(key, &new, version) {
            Ok(true) => return Some(new),
            Ok(false) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A map with versions; `lose` makes that many writes lose to another
/// worker, which wrote `theirs` first.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct MapStore {
    pub map: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
    pub lose: std::cell::Cell<u32>,
    pub theirs: Vec<u8>,
}

#[cfg(test)]
impl CounterStore for MapStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, version)) => (Some(v.clone()), Some(*version)),
            None => (None, None),
        }
    }
    fn set(&self, key: &str, value: &[u8], version: Option<u32>) -> Result<bool, String> {
        let mut map = self.map.borrow_mut();
        let current = map.get(key).map(|(_, v)| *v);
        if self.lose.get() > 0 {
            self.lose.set(self.lose.get() - 1);
            map.insert(key.to_string(), (self.theirs.clone(), current.unwrap_or(0) + 1));
            return Ok(false);
        }
        // No version: an unconditional write, as in proxy-wasm.
        if version.is_some() && version != current {
            return Ok(false);
        }
        map.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(true)
    }
}
