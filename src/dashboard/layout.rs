//! Dashboard layouts (`dashboards/*.toml`): tabs of rows of panels, each panel a kind of
//! widget over a view or a query of its own. A bad layout is one error with its file and line.
//!
//! ```toml
//! name = "controller"
//! [[tabs]]
//! name = "Overview"
//! [[tabs.rows]]
//! height = 7                      # lines, or "40%"; rows without a height share the rest
//! panels = [{ panel = "kpis" }]
//! [[tabs.rows]]
//! panels = [{ panel = "aging", width = "40%" }, { panel = "dso_trend" }]
//! ```

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::pipeline::spec::{SpecError, line_of};

/// What a panel shows. Each kind has its query; `table` shows the rows of any query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// KPI tiles: value, change against the previous period, sparkline of the history.
    Kpis,
    /// Open amount per aging bucket, as bars.
    Aging,
    /// DSO over the KPI history, as a line.
    DsoTrend,
    /// Customers and amounts per risk segment.
    Segments,
    /// The collectors' worklist: sortable, filterable, drills into a customer.
    Worklist,
    /// The 13-week cash forecast with its band and its backtested WAPE.
    Forecast,
    /// Recent outreach messages and their failures.
    Outreach,
    /// Feed health: last file applied, files quarantined with their reasons.
    Health,
    /// The rows of the panel's `sql`.
    Table,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Kpis,
        Kind::Aging,
        Kind::DsoTrend,
        Kind::Segments,
        Kind::Worklist,
        Kind::Forecast,
        Kind::Outreach,
        Kind::Health,
        Kind::Table,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kpis => "kpis",
            Kind::Aging => "aging",
            Kind::DsoTrend => "dso_trend",
            Kind::Segments => "segments",
            Kind::Worklist => "worklist",
            Kind::Forecast => "forecast",
            Kind::Outreach => "outreach",
            Kind::Health => "health",
            Kind::Table => "table",
        }
    }

    pub fn default_title(self) -> &'static str {
        match self {
            Kind::Kpis => "KPIs",
            Kind::Aging => "Aging",
            Kind::DsoTrend => "DSO trend",
            Kind::Segments => "Risk segments",
            Kind::Worklist => "Worklist",
            Kind::Forecast => "Cash forecast",
            Kind::Outreach => "Outreach",
            Kind::Health => "Feed health",
            Kind::Table => "Query",
        }
    }

    /// Whether it lists rows one can scroll, filter and sort.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Kind::Segments | Kind::Worklist | Kind::Outreach | Kind::Health | Kind::Table
        )
    }
}

/// A size along one axis: lines (or columns), a share in percent, or an equal part of what
/// is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Cells(u16),
    Percent(u16),
    Rest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub kind: Kind,
    pub title: String,
    /// The query it shows instead of its kind's (a `table` must have one).
    pub sql: Option<String>,
    pub width: Size,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub height: Size,
    pub panels: Vec<Panel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tab {
    pub name: String,
    pub rows: Vec<Row>,
}

/// A dashboard layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub name: String,
    pub file: String,
    pub tabs: Vec<Tab>,
}

impl Layout {
    /// Every panel, with its tab: the index into this list is the panel's id.
    pub fn panels(&self) -> Vec<(usize, &Panel)> {
        (self.tabs.iter().enumerate())
            .flat_map(|(t, tab)| {
                tab.rows
                    .iter()
                    .flat_map(move |r| r.panels.iter().map(move |p| (t, p)))
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    tabs: Spanned<Vec<RawTab>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTab {
    name: Spanned<String>,
    rows: Spanned<Vec<RawRow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    height: Option<Spanned<toml::Value>>,
    panels: Spanned<Vec<RawPanel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPanel {
    panel: Spanned<String>,
    title: Option<String>,
    sql: Option<Spanned<String>>,
    view: Option<Spanned<String>>,
    width: Option<Spanned<toml::Value>>,
}

/// Read and check a layout file.
pub fn load(file: &Path) -> Result<Layout, SpecError> {
    let (shown, text) = crate::pipeline::spec::read_spec(file, "dashboard layout")?;
    parse(&shown, &text)
}

/// Check a layout's text (`file` names it in errors).
pub fn parse(file: &str, text: &str) -> Result<Layout, SpecError> {
    let error = |offset: usize, message: String| SpecError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    };
    let raw: RawLayout = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        error(offset, e.message().to_string())
    })?;
    let _ = raw.description;
    if raw.tabs.get_ref().is_empty() {
        return Err(error(
            raw.tabs.span().start,
            "a layout needs at least one tab".into(),
        ));
    }
    let mut tabs = Vec::new();
    for tab in raw.tabs.into_inner() {
        if tab.rows.get_ref().is_empty() {
            return Err(error(
                tab.rows.span().start,
                format!("tab '{}' has no rows", tab.name.get_ref()),
            ));
        }
        let mut rows = Vec::new();
        for row in tab.rows.into_inner() {
            let height = size(row.height.as_ref(), "height").map_err(|(o, m)| error(o, m))?;
            if row.panels.get_ref().is_empty() {
                return Err(error(
                    row.panels.span().start,
                    "a row needs at least one panel".into(),
                ));
            }
            let mut panels = Vec::new();
            for p in row.panels.into_inner() {
                let Some(kind) = Kind::ALL
                    .into_iter()
                    .find(|k| k.name() == p.panel.get_ref())
                else {
                    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                    return Err(error(
                        p.panel.span().start,
                        format!(
                            "unknown panel '{}': one of {}",
                            p.panel.get_ref(),
                            names.join(", ")
                        ),
                    ));
                };
                let sql = match (p.sql, p.view) {
                    (Some(s), Some(_)) => {
                        return Err(error(
                            s.span().start,
                            "give `sql` or `view`, not both".into(),
                        ));
                    }
                    (Some(s), None) if s.get_ref().trim().is_empty() => {
                        return Err(error(s.span().start, "`sql` is empty".into()));
                    }
                    (Some(s), None) => Some(s.into_inner()),
                    (None, Some(v)) => {
                        let name = v.get_ref();
                        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            || name.is_empty()
                        {
                            return Err(error(
                                v.span().start,
                                format!("`view` '{name}' is not a view name"),
                            ));
                        }
                        Some(format!("SELECT * FROM {name}"))
                    }
                    (None, None) if kind == Kind::Table => {
                        return Err(error(
                            p.panel.span().start,
                            "a `table` panel needs `sql` or `view`".into(),
                        ));
                    }
                    (None, None) => None,
                };
                let width = size(p.width.as_ref(), "width").map_err(|(o, m)| error(o, m))?;
                panels.push(Panel {
                    kind,
                    title: p.title.unwrap_or_else(|| kind.default_title().to_string()),
                    sql,
                    width,
                });
            }
            rows.push(Row { height, panels });
        }
        tabs.push(Tab {
            name: tab.name.into_inner(),
            rows,
        });
    }
    Ok(Layout {
        name: raw.name.into_inner(),
        file: file.to_string(),
        tabs,
    })
}

/// A size: a whole number of cells or `"N%"`.
fn size(value: Option<&Spanned<toml::Value>>, key: &str) -> Result<Size, (usize, String)> {
    let Some(value) = value else {
        return Ok(Size::Rest);
    };
    let bad = || {
        (
            value.span().start,
            format!("`{key}` is a number of cells or a share such as \"40%\""),
        )
    };
    match value.get_ref() {
        toml::Value::Integer(n) if (1..=1000).contains(n) => Ok(Size::Cells(*n as u16)),
        toml::Value::String(s) => {
            let percent: u16 =
                (s.trim().strip_suffix('%').ok_or_else(bad)?.trim().parse()).map_err(|_| bad())?;
            match (1..=100).contains(&percent) {
                true => Ok(Size::Percent(percent)),
                false => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// The layout named `name` (a file of `folder` without `.toml`) or at the path `name`.
pub fn find(folder: &Path, name: &str) -> Result<Layout, SpecError> {
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.components().count() > 1 {
        return load(path);
    }
    let file = folder.join(format!("{name}.toml"));
    if !file.exists() {
        let known: Vec<String> = (std::fs::read_dir(folder).into_iter().flatten().flatten())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .collect();
        return Err(SpecError {
            file: file.display().to_string(),
            line: 1,
            message: format!(
                "no dashboard layout '{name}' (layouts in {}: {})",
                folder.display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        });
    }
    load(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_layouts_load() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
        for name in ["controller", "collector"] {
            let layout = find(&folder, name).unwrap();
            assert_eq!(layout.name, name);
            assert!(!layout.panels().is_empty());
        }
    }

    #[test]
    fn a_bad_layout_is_one_error_with_its_line() {
        let text = "name = \"x\"\n[[tabs]]\nname = \"A\"\n[[tabs.rows]]\nheight = 5\npanels = [{ panel = \"pie\" }]\n";
        let e = parse("x.toml", text).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("unknown panel 'pie'"), "{e}");
        let text = "name = \"x\"\n[[tabs]]\nname = \"A\"\n[[tabs.rows]]\nheight = \"140%\"\npanels = [{ panel = \"kpis\" }]\n";
        let e = parse("x.toml", text).unwrap_err();
        assert_eq!((e.line, e.message.contains("height")), (5, true), "{e}");
        let text = "name = \"x\"\n[[tabs]]\nname = \"A\"\n[[tabs.rows]]\npanels = [{ panel = \"table\" }]\n";
        let e = parse("x.toml", text).unwrap_err();
        assert!(e.message.contains("needs `sql`"), "{e}");
        let e = parse("x.toml", "name = \"x\"\ntabz = 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
