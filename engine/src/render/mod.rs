//! Renderers of a finished [`Report`](crate::Report): the HTML page and the CSV files (the JSON
//! is the report's own serde form). They read the report's JSON form, so every analysis in the
//! report is shown without the renderers knowing its Rust type; see [`view`].

pub mod charts;
pub mod csv;
pub mod html;
pub mod view;

pub use self::csv::write_csv;
pub use self::html::html;
