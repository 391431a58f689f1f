//! A request's GPU models (docs/contracts.md#limits, "bounded work per request"): how many it may
//! list, their normal form (trimmed, each named once whatever its case), and [`ModelFilter`], the
//! list resolved once against the GPU models hosts have, so that matching a request costs linear
//! work in its size once per pass, then a lookup per unit, whatever the number of hosts.

use crate::model::GpuRequest;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Most entries `gpu.models` may list (duplicates included: they are counted before they
/// are merged, so a list of one model many times is refused, not shrunk).
pub const MAX_MODELS: usize = 16;
/// Longest model name a request may give, in characters (NVML names are about 30).
pub const MAX_MODEL_CHARS: usize = 64;

/// `models` trimmed, without empty entries, each model once (the first spelling of names
/// equal but for case), in the order given: the order is the preference.
pub fn normalise(models: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    models
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty() && seen.insert(m.to_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// A request stored before the caps (a data dir written by an older coordinator may hold
/// one model 20,000 times) is brought to the normal form on load, then cut to the first
/// [`MAX_MODELS`]: what is dropped only narrows where it may run, never widens it, and the
/// request keeps its place rather than failing for what the API accepted then. Answers
/// whether anything changed.
pub fn normalise_loaded(gpu: &mut GpuRequest) -> bool {
    let mut models = normalise(&gpu.models);
    models.truncate(MAX_MODELS);
    let changed = models != gpu.models;
    gpu.models = models;
    changed
}

/// The request's model patterns, lowercased once, and for each GPU model name met so far
/// which patterns name it: hosts of one model share the answer.
pub struct ModelFilter {
    wanted: Vec<String>,
    by_gpu_model: RefCell<HashMap<String, u64>>,
}

impl ModelFilter {
    /// At most 64 patterns are kept; validation and loading allow [`MAX_MODELS`].
    pub fn new(gpu: &GpuRequest) -> Self {
        let mut wanted: Vec<String> =
            normalise(&gpu.models).iter().map(|m| m.to_lowercase()).collect();
        wanted.truncate(64);
        ModelFilter { wanted, by_gpu_model: RefCell::default() }
    }

    /// How many patterns the request gives (in its order of preference).
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Whether pattern `index` names the GPU model `gpu_model` (as NVML names it).
    pub fn names(&self, index: usize, gpu_model: &str) -> bool {
        self.mask(gpu_model) & (1u64 << index) != 0
    }

    /// Whether any of the patterns names `gpu_model`.
    pub fn any(&self, gpu_model: &str) -> bool {
        self.mask(gpu_model) != 0
    }

    fn mask(&self, gpu_model: &str) -> u64 {
        if let Some(&mask) = self.by_gpu_model.borrow().get(gpu_model) {
            return mask;
        }
        let lower = gpu_model.to_lowercase();
        let mask = self
            .wanted
            .iter()
            .enumerate()
            .filter(|(_, w)| lower.contains(w.as_str()))
            .fold(0, |mask, (i, _)| mask | (1u64 << i));
        self.by_gpu_model.borrow_mut().insert(gpu_model.to_owned(), mask);
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(models: &[&str]) -> GpuRequest {
        GpuRequest { models: models.iter().map(|m| (*m).to_owned()).collect(), count: 1 }
    }

    #[test]
    fn models_are_trimmed_and_named_once_in_their_order() {
        let models = gpu(&[" H100 ", "h100", "", "A100", "H100"]).models;
        assert_eq!(normalise(&models), ["H100", "A100"]);
    }

    #[test]
    fn an_old_oversized_list_is_cut_on_load() {
        let mut flood = gpu(&vec!["H100"; 20_000]);
        assert!(normalise_loaded(&mut flood));
        assert_eq!(flood.models, ["H100"]);
        let many: Vec<String> = (0..40).map(|i| format!("M{i}")).collect();
        let mut wide = GpuRequest { models: many.clone(), count: 1 };
        assert!(normalise_loaded(&mut wide));
        assert_eq!(wide.models, many[..MAX_MODELS]);
        let mut fine = gpu(&["L4", "H100"]);
        assert!(!normalise_loaded(&mut fine));
    }

    #[test]
    fn the_filter_matches_as_a_case_insensitive_substring_per_pattern() {
        let filter = ModelFilter::new(&gpu(&["h100", "A100", " ", "NVIDIA"]));
        assert_eq!(filter.len(), 3);
        let h100 = "NVIDIA H100 80GB HBM3";
        assert!(filter.names(0, h100) && !filter.names(1, h100) && filter.names(2, h100));
        assert!(filter.any("NVIDIA L4") && !filter.any("Tesla T4"));
        assert!(filter.names(1, "NVIDIA A100-SXM4-80GB"), "a second look is cached");
        assert!(filter.names(1, "NVIDIA A100-SXM4-80GB"));
    }
}
