//! Class labels: ImageNet-1k ships with the crate; TF-slim's 1001-class models get
//! `background` at index 0; other class counts print indices unless a labels file is given.

use crate::error::{Error, Result};
use std::path::Path;

const IMAGENET: &str = include_str!("../assets/imagenet_labels.txt");

/// One name per class index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(Vec<String>);

impl Labels {
    /// The default labels for a model with `classes` outputs.
    pub fn for_classes(classes: usize) -> Labels {
        let imagenet = IMAGENET.lines().map(str::to_string);
        match classes {
            1000 => Labels(imagenet.collect()),
            1001 => Labels(
                std::iter::once("background".to_string())
                    .chain(imagenet)
                    .collect(),
            ),
            n => Labels((0..n).map(|i| i.to_string()).collect()),
        }
    }

    /// Labels as given (e.g. a checkpoint's own `id2label`).
    pub fn from_names(names: Vec<String>) -> Labels {
        Labels(names)
    }

    /// One label per line (blank trailing lines ignored); must match the model's class count.
    pub fn from_file(path: &Path, classes: usize) -> Result<Labels> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text, classes, &path.display().to_string())
    }

    /// [`Labels::from_file`] on the text of such a file; `name` is what errors call it.
    pub fn from_text(text: &str, classes: usize, name: &str) -> Result<Labels> {
        let labels = text.trim_end().lines().map(|l| l.trim().to_string());
        Labels::new(labels.collect(), classes, name)
    }

    /// Labels given as a list (`what` names it in the error); must match the model's class
    /// count.
    pub fn new(labels: Vec<String>, classes: usize, what: &str) -> Result<Labels> {
        if labels.len() != classes {
            return Err(Error::Input(format!(
                "{what} has {} labels but the model has {classes} classes",
                labels.len()
            )));
        }
        Ok(Labels(labels))
    }

    /// The label of class `index`; panics when it is out of range.
    pub fn get(&self, index: usize) -> &str {
        &self.0[index]
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_and_slim_offsets() {
        assert_eq!(Labels::for_classes(1000).get(0), "tench");
        let slim = Labels::for_classes(1001);
        assert_eq!((slim.get(0), slim.get(1)), ("background", "tench"));
        assert_eq!(Labels::for_classes(10).get(7), "7");
    }
}
