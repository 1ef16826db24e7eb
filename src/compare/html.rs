//! The comparison as a page (askama; escaping is on for `.html` templates, so
//! every value from a report, such as a User-Agent or an SNI, is escaped).

use askama::Template;

use super::{Comparison, Standing};

/// `/compare/{a}/{b}` as HTML: the headline, the ranked explanation, what the
/// reports lack, then the table with each difference marked.
#[derive(Debug, Template)]
#[template(path = "compare.html")]
pub struct ComparePage<'a> {
    pub c: &'a Comparison,
}

impl ComparePage<'_> {
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// The headline's colour: a failing side is what this page is about.
    pub fn headline_class(&self) -> &'static str {
        if self.c.a.standing == Standing::Failing || self.c.b.standing == Standing::Failing {
            "bad"
        } else {
            "good"
        }
    }

    /// The class of a side's column heading.
    pub fn standing_class(&self, standing: &Standing) -> &'static str {
        match standing {
            Standing::Working => "working",
            Standing::Failing => "failing",
            Standing::Undecided => "",
        }
    }

    pub fn has_missing(&self) -> bool {
        !self.c.a.missing.is_empty() || !self.c.b.missing.is_empty()
    }
}
