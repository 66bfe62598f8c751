//! Drawing a frame from the [`App`]: the tab bar, the current tab's panels (or the customer
//! drilled into), the status line, and the help over them. Only prepared rows are read, and
//! of a list only the rows on the screen, so a frame costs the same at any size of state.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout as Split, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph,
    Sparkline, Widget, Wrap,
};

use super::app::{App, ListView, Screen};
use super::board::{Forecast, Prepared, Rows, Tile, Unit};
use super::layout::{Kind, Size};
use super::theme::THEME;

/// Draw the whole frame.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let [top, body, bottom] = Split::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    tabs(frame, app, top);
    app.areas.clear();
    // Borrowed, never copied: a customer's detail may hold thousands of rows.
    match app.stack.last() {
        Some(Screen::Detail { detail, scroll }) => {
            self::detail(frame, detail, *scroll, body, &app.breadcrumb())
        }
        _ => board(frame, app, body),
    }
    status(frame, app, bottom);
    if let Some(form) = &app.form {
        self::form(frame, form, body);
    }
    if app.help {
        help(frame, frame.area());
    }
}

fn tabs(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(" arstream ", THEME.title), Span::raw(" ")];
    for (i, tab) in app.layout.tabs.iter().enumerate() {
        let style = if i == app.tab {
            THEME.tab_selected
        } else {
            THEME.tab
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, tab.name), style));
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Line::from(spans), area);
    let s = &app.board.status;
    let right = match s.as_of {
        Some(day) => format!("as of {day} · {} ", s.currency),
        None => "loading the state… ".to_string(),
    };
    frame.render_widget(
        Paragraph::new(Span::styled(right, THEME.accent)).alignment(Alignment::Right),
        area,
    );
}

fn constraint(size: Size) -> Constraint {
    match size {
        Size::Cells(n) => Constraint::Length(n),
        Size::Percent(p) => Constraint::Percentage(p),
        Size::Rest => Constraint::Fill(1),
    }
}

fn board(frame: &mut Frame, app: &mut App, area: Rect) {
    let first_id = app.panels_of_tab().first().copied().unwrap_or(0);
    // Borrowed field by field: the tab is read while the areas and lists are written.
    let tab = &app.layout.tabs[app.tab];
    let rows = Split::vertical(tab.rows.iter().map(|r| constraint(r.height))).split(area);
    let mut id = first_id;
    for (row, row_area) in tab.rows.iter().zip(rows.iter()) {
        let cells =
            Split::horizontal(row.panels.iter().map(|p| constraint(p.width))).split(*row_area);
        for (panel, cell) in row.panels.iter().zip(cells.iter()) {
            app.areas.push((id, *cell));
            let focused = app.focus == Some(id);
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(if focused {
                    THEME.border_focused
                } else {
                    THEME.border
                })
                .title(Span::styled(format!(" {} ", panel.title), THEME.title));
            // Borrowed, never copied: a list may hold thousands of rows.
            match app.board.panels.get(&id) {
                None => {
                    let text = match app.board.status.as_of {
                        None => "loading the state…",
                        Some(_) => "preparing…",
                    };
                    frame.render_widget(
                        Paragraph::new(Span::styled(text, THEME.muted)).block(block),
                        *cell,
                    );
                }
                Some(Prepared::Failed(error)) => frame.render_widget(
                    Paragraph::new(Span::styled(error.as_str(), THEME.bad))
                        .wrap(Wrap { trim: true })
                        .block(block),
                    *cell,
                ),
                Some(Prepared::Tiles(tiles)) => {
                    self::tiles(frame, tiles, &app.board.status.currency, block, *cell)
                }
                Some(Prepared::Bars(bars)) => aging(frame, bars, block, *cell),
                Some(Prepared::Line(points)) => trend(frame, points, block, *cell),
                Some(Prepared::Forecast(f)) => forecast(frame, f, block, *cell),
                Some(Prepared::Rows(rows)) => {
                    let inner_rows = cell.height.saturating_sub(3) as usize;
                    app.page = inner_rows.max(1);
                    let view = app.lists.entry(id).or_default();
                    list(frame, rows, view, focused, panel.kind, block, *cell);
                }
            }
            id += 1;
        }
    }
}

/// A money amount in few characters: 1.23M, 45.6k, 999.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let sign = if v < 0.0 { "-" } else { "" };
    match a {
        a if a >= 1e9 => format!("{sign}{:.2}B", a / 1e9),
        a if a >= 1e6 => format!("{sign}{:.2}M", a / 1e6),
        a if a >= 1e4 => format!("{sign}{:.1}k", a / 1e3),
        a if a < 100.0 && a.fract() != 0.0 => format!("{sign}{a:.2}"),
        _ => format!("{sign}{a:.0}"),
    }
}

/// [`compact`] in at most `width` characters where it can be: fewer decimals, then none.
fn compact_in(v: f64, width: usize) -> String {
    let text = compact(v);
    if text.chars().count() <= width {
        return text;
    }
    let (a, sign) = (v.abs(), if v < 0.0 { "-" } else { "" });
    let (scaled, unit) = match a {
        a if a >= 1e9 => (a / 1e9, "B"),
        a if a >= 1e6 => (a / 1e6, "M"),
        a if a >= 1e3 => (a / 1e3, "k"),
        a => (a, ""),
    };
    let one = format!("{sign}{scaled:.1}{unit}");
    match one.chars().count() <= width {
        true => one,
        false => format!("{sign}{scaled:.0}{unit}"),
    }
}

fn value_text(v: Option<f64>, unit: Unit) -> String {
    match (v, unit) {
        (None, _) => "n/a".into(),
        (Some(v), Unit::Money) => compact(v),
        (Some(v), Unit::Days) => format!("{v:.1} d"),
        (Some(v), Unit::Percent) => format!("{:.1} %", v * 100.0),
    }
}

fn change_text(tile: &Tile) -> Span<'static> {
    let (Some(now), Some(before)) = (tile.value, tile.previous) else {
        return Span::styled("no history", THEME.muted);
    };
    let delta = now - before;
    let shown = match tile.unit {
        Unit::Money => compact(delta.abs()),
        Unit::Days => format!("{:.1}", delta.abs()),
        Unit::Percent => format!("{:.1} pt", delta.abs() * 100.0),
    };
    let arrow = if delta > 0.0 {
        "▲"
    } else if delta < 0.0 {
        "▼"
    } else {
        "="
    };
    let good = (delta > 0.0) == tile.higher_is_better;
    let style = if delta == 0.0 {
        THEME.muted
    } else if good {
        THEME.good
    } else {
        THEME.bad
    };
    Span::styled(format!("{arrow} {shown}"), style)
}

fn tiles(frame: &mut Frame, tiles: &[Tile], currency: &str, block: Block, area: Rect) {
    let block = block.title_bottom(
        Line::from(Span::styled(
            format!(" {currency}; change against a month before "),
            THEME.muted,
        ))
        .right_aligned(),
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let cells = Split::horizontal(tiles.iter().map(|_| Constraint::Fill(1))).split(inner);
    for (tile, cell) in tiles.iter().zip(cells.iter()) {
        // A column between tiles.
        let cell = &Rect {
            width: cell.width.saturating_sub(1),
            ..*cell
        };
        let [label, value, change, spark] = Split::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(0),
        ])
        .areas(*cell);
        frame.render_widget(Line::from(Span::styled(tile.label, THEME.muted)), label);
        frame.render_widget(
            Line::from(Span::styled(
                value_text(tile.value, tile.unit),
                THEME.header,
            )),
            value,
        );
        frame.render_widget(Line::from(change_text(tile)), change);
        if spark.height > 0 && tile.history.len() > 1 {
            let min = tile.history.iter().copied().fold(f64::INFINITY, f64::min);
            let max = tile
                .history
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let scaled: Vec<u64> = (tile.history.iter())
                .map(|v| match max > min {
                    true => 1 + ((v - min) / (max - min) * 99.0) as u64,
                    false => 50,
                })
                .collect();
            let width = spark.width.saturating_sub(1) as usize;
            let shown = &scaled[scaled.len().saturating_sub(width)..];
            frame.render_widget(
                Sparkline::default()
                    .data(shown)
                    .max(100)
                    .style(THEME.accent),
                spark,
            );
        }
    }
}

fn aging(frame: &mut Frame, bars: &[(String, f64)], block: Block, area: Rect) {
    let inner = block.inner(area);
    let n = bars.len().max(1) as u16;
    let width = (inner.width.saturating_sub(n) / n).clamp(1, 12);
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0);
    // A bucket with something in it is at least a cell high, so its amount shows (it is
    // written inside the bar; a bar lower than a cell showed none).
    let cells = inner.height.saturating_sub(1).max(1) as u64;
    let one_cell = 1000u64.div_ceil(cells);
    let items: Vec<Bar> = (bars.iter().enumerate())
        .map(|(i, (label, v))| {
            let style = match i {
                0 => THEME.good,
                1 => THEME.text,
                2 => THEME.warn,
                _ => THEME.bad,
            };
            let height = (v.max(0.0) / max * 1000.0) as u64;
            Bar::default()
                .value(if *v > 0.0 {
                    height.max(one_cell)
                } else {
                    height
                })
                .text_value(compact_in(*v, width as usize))
                .label(Line::from(label.clone()))
                .style(style)
        })
        .collect();
    let chart = BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&items))
        .bar_width(width)
        .bar_gap(1)
        .max(1000);
    frame.render_widget(chart, area);
}

fn bounds(values: impl Iterator<Item = f64> + Clone) -> [f64; 2] {
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() {
        return [0.0, 1.0];
    }
    let pad = ((max - min) * 0.1).max(1e-9).max(max.abs() * 0.02);
    [min - pad, max + pad]
}

fn trend(frame: &mut Frame, points: &[(chrono::NaiveDate, f64)], block: Block, area: Rect) {
    if points.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no DSO yet", THEME.muted)).block(block),
            area,
        );
        return;
    }
    let data: Vec<(f64, f64)> = (points.iter().enumerate())
        .map(|(i, (_, v))| (i as f64, *v))
        .collect();
    let y = bounds(data.iter().map(|p| p.1));
    let first = points
        .first()
        .map(|p| p.0.format("%b %y").to_string())
        .unwrap_or_default();
    let last = points
        .last()
        .map(|p| p.0.format("%b %y").to_string())
        .unwrap_or_default();
    let now = points.last().map(|p| p.1).unwrap_or_default();
    let block = block.title_bottom(
        Line::from(Span::styled(format!(" now {now:.1} days "), THEME.header)).right_aligned(),
    );
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(THEME.accent)
            .data(&data),
    ])
    .block(block)
    .x_axis(
        Axis::default()
            .bounds([0.0, (data.len().max(2) - 1) as f64])
            .labels([first, last])
            .style(THEME.muted),
    )
    .y_axis(
        Axis::default()
            .bounds(y)
            .labels([format!("{:.0}", y[0]), format!("{:.0}", y[1])])
            .style(THEME.muted),
    );
    frame.render_widget(chart, area);
}

fn forecast(frame: &mut Frame, f: &Forecast, block: Block, area: Rect) {
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1} %", v * 100.0));
    let wide = area.width >= 72;
    let note = match wide {
        true => format!(
            " backtest WAPE {} (baselines {}, {}) · band {} ",
            pct(f.wape),
            pct(f.wape_due_date),
            pct(f.wape_average_delay),
            pct(f.band_coverage)
        ),
        false => format!(" WAPE {} · band {} ", pct(f.wape), pct(f.band_coverage)),
    };
    let beats = matches!((f.wape, f.wape_due_date, f.wape_average_delay), (Some(w), Some(a), Some(b)) if w < a && w < b);
    let block = block.title_bottom(
        Line::from(Span::styled(
            note,
            if beats { THEME.good } else { THEME.warn },
        ))
        .right_aligned(),
    );
    if f.weeks.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no forecast yet", THEME.muted)).block(block),
            area,
        );
        return;
    }
    let point = |get: fn(&super::board::Week) -> f64| -> Vec<(f64, f64)> {
        (f.weeks.iter().enumerate())
            .map(|(i, w)| ((i + 1) as f64, get(w)))
            .collect()
    };
    let (expected, low, high) = (point(|w| w.expected), point(|w| w.low), point(|w| w.high));
    let y = bounds(low.iter().chain(&high).map(|p| p.1));
    let total: f64 = f.weeks.iter().map(|w| w.expected).sum();
    let chart = Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(THEME.band)
            .data(&high),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(THEME.band)
            .data(&low),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(THEME.accent)
            .data(&expected),
    ])
    .block(
        block.title(
            Line::from(Span::styled(
                match wide {
                    true => format!(
                        " expected {} in {} weeks, 80 % band ",
                        compact(total),
                        f.weeks.len()
                    ),
                    false => format!(" {} in {} wk ", compact(total), f.weeks.len()),
                },
                THEME.accent,
            ))
            .right_aligned(),
        ),
    )
    .x_axis(
        Axis::default()
            .bounds([1.0, f.weeks.len().max(2) as f64])
            .labels([
                f.weeks
                    .first()
                    .map(|w| w.start.format("%d %b").to_string())
                    .unwrap_or_default(),
                f.weeks
                    .last()
                    .map(|w| w.start.format("%d %b").to_string())
                    .unwrap_or_default(),
            ])
            .style(THEME.muted),
    )
    .y_axis(
        Axis::default()
            .bounds(y)
            .labels([compact(y[0].max(0.0)), compact(y[1])])
            .style(THEME.muted),
    );
    frame.render_widget(chart, area);
}

/// The columns' widths over the rows shown, fitted into `room`: each as wide as its widest
/// cell (at most 40); when they do not fit, numbers are written short (1.23M) and then text
/// long text columns shrink, and then the columns on the right are left out. Returns the
/// widths of the columns shown and, per column, whether its numbers are written short.
fn widths(rows: &Rows, shown: &[usize], room: u16) -> (Vec<u16>, Vec<bool>) {
    let n = rows.columns.len();
    let widest = |c: usize, short: bool| -> u16 {
        (shown.iter())
            .map(|&i| match short {
                true => compact(rows.numbers[i][c]).chars().count(),
                false => rows.cells[i][c].chars().count(),
            })
            .chain([rows.columns[c].chars().count().min(12)])
            .max()
            .unwrap_or(1)
            .min(40) as u16
    };
    let fits = |w: &[u16]| w.iter().sum::<u16>() + w.len().saturating_sub(1) as u16 <= room;
    let mut short = vec![false; n];
    let mut w: Vec<u16> = (0..n).map(|c| widest(c, false)).collect();
    if !fits(&w) {
        for c in (0..n).filter(|&c| rows.numeric.get(c).copied().unwrap_or(false)) {
            short[c] = true;
            w[c] = widest(c, true);
        }
    }
    // Then the widest text column a cell narrower at a time, down to 12; then the columns on
    // the right left out.
    while !fits(&w) {
        let text = (0..n).filter(|&c| !rows.numeric.get(c).copied().unwrap_or(false) && w[c] > 12);
        let Some(c) = text.max_by_key(|&c| w[c]) else {
            break;
        };
        w[c] -= 1;
    }
    while w.len() > 1 && !fits(&w) {
        w.pop();
    }
    (w, short)
}

/// `text` in at most `width` characters, cut with an ellipsis.
fn cut(text: &str, width: u16) -> String {
    let width = width as usize;
    match text.chars().count() > width {
        true if width > 1 => text.chars().take(width - 1).chain(['…']).collect(),
        true => text.chars().take(width).collect(),
        false => text.to_string(),
    }
}

fn list(
    frame: &mut Frame,
    rows: &Rows,
    view: &mut ListView,
    focused: bool,
    kind: Kind,
    block: Block,
    area: Rect,
) {
    let visible = area.height.saturating_sub(3) as usize;
    if view.selected >= view.offset + visible.max(1) {
        view.offset = view.selected + 1 - visible.max(1);
    }
    if view.selected < view.offset {
        view.offset = view.selected;
    }
    let end = (view.offset + visible).min(view.order.len());
    let shown: Vec<usize> = view.order[view.offset.min(end)..end].to_vec();
    let mut notes = vec![format!(
        " {}/{}",
        if view.order.is_empty() {
            0
        } else {
            view.selected + 1
        },
        view.order.len()
    )];
    if let Some(more) = rows.more {
        notes.push(format!("of {more}"));
    }
    if !view.filter.is_empty() {
        notes.push(format!("filter '{}'", view.filter));
    }
    if let Some((c, descending)) = view.sort {
        notes.push(format!(
            "sort {} {}",
            rows.columns.get(c).map_or("", |s| s.as_str()),
            if descending { "↓" } else { "↑" }
        ));
    }
    let mut block = block.title_bottom(
        Line::from(Span::styled(format!("{} ", notes.join(" · ")), THEME.muted)).right_aligned(),
    );
    if let Some(note) = &rows.note {
        block = block.title_bottom(Line::from(Span::styled(format!(" {note} "), THEME.warn)));
    }
    let (widths, short) = widths(rows, &shown, area.width.saturating_sub(2));
    let numeric = |c: usize| rows.numeric.get(c).copied().unwrap_or(false);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    let mut y = inner.y;
    let bottom = inner.y + inner.height;
    if kind != Kind::Health && y < bottom {
        let mut x = inner.x;
        for (c, &w) in widths.iter().enumerate() {
            let cell = Rect::new(x, y, w, 1).intersection(inner);
            buf.set_style(cell, THEME.header);
            put(buf, cell, &cut(&rows.columns[c], w), numeric(c));
            x = x.saturating_add(w + 1);
        }
        y += 1;
    }
    for &i in &shown {
        if y >= bottom {
            break;
        }
        let selected = focused && view.order.get(view.selected) == Some(&i);
        let failed =
            kind == Kind::Outreach && rows.cells[i].iter().any(|c| c.starts_with("FAILED"));
        let quarantined = kind == Kind::Health && rows.cells[i][0].starts_with('✗');
        let style = if selected {
            THEME.selected
        } else if failed || quarantined {
            THEME.bad
        } else {
            Style::default()
        };
        buf.set_style(Rect::new(inner.x, y, inner.width, 1), style);
        let mut x = inner.x;
        for (c, &w) in widths.iter().enumerate() {
            let cell = Rect::new(x, y, w, 1).intersection(inner);
            let text = &rows.cells[i][c];
            match (numeric(c), short[c]) {
                (true, true) if !rows.numbers[i][c].is_nan() => {
                    put(buf, cell, &compact(rows.numbers[i][c]), true)
                }
                (true, _) => put(buf, cell, text, true),
                (false, _) => put(buf, cell, &cut(text, w), false),
            }
            x = x.saturating_add(w + 1);
        }
        y += 1;
    }
    if rows.is_empty() {
        let inner = Rect {
            y: area.y + 2,
            height: 1,
            ..area.inner(ratatui::layout::Margin::new(1, 0))
        };
        frame.render_widget(Span::styled("nothing to show", THEME.muted), inner);
    }
}

/// `text` in `cell` (one line), aligned left or right; what a `Line` would draw there (cut at
/// the cell's edge, from the left when aligned right). A list fills the screen with such
/// text, nearly all of it printable ASCII, which is written a byte a cell: laying out each
/// cell's text as graphemes took most of a frame's time.
fn put(buf: &mut ratatui::buffer::Buffer, cell: Rect, text: &str, right: bool) {
    if cell.width == 0 || cell.height == 0 {
        return;
    }
    let printable = text.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !printable {
        let line = match right {
            true => Line::from(text).right_aligned(),
            false => Line::from(text),
        };
        line.render(cell, buf);
        return;
    }
    let bytes = text.as_bytes();
    let n = bytes.len().min(usize::from(cell.width));
    let (shown, x) = match right {
        true => (&bytes[bytes.len() - n..], cell.x + cell.width - n as u16),
        false => (&bytes[..n], cell.x),
    };
    for (k, &b) in shown.iter().enumerate() {
        buf[(x + k as u16, cell.y)].set_char(char::from(b));
    }
}

/// A customer drilled into: its sections one after another, scrolled as one.
pub fn detail(
    frame: &mut Frame,
    detail: &super::board::Detail,
    scroll: usize,
    area: Rect,
    crumbs: &[String],
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(THEME.border_focused)
        .title(Span::styled(
            format!(" {} ", crumbs.join(" › ")),
            THEME.title,
        ))
        .title_bottom(
            Line::from(Span::styled(" Esc back · ↑↓ scroll ", THEME.muted)).right_aligned(),
        );
    let Some(sections) = &detail.sections else {
        frame.render_widget(
            Paragraph::new(Span::styled("loading…", THEME.muted)).block(block),
            area,
        );
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    for (title, rows) in sections {
        lines.push(Line::from(Span::styled(
            format!("{title} ({})", rows.len()),
            THEME.title,
        )));
        let all: Vec<usize> = (0..rows.len()).collect();
        let widths: Vec<usize> = (0..rows.columns.len())
            .map(|c| {
                all.iter()
                    .map(|&i| rows.cells[i][c].chars().count())
                    .chain([rows.columns[c].chars().count()])
                    .max()
                    .unwrap_or(1)
                    // Ids whole, so that one can be typed into a form or `arstream act`.
                    .min(if rows.columns[c].ends_with("id") {
                        64
                    } else {
                        48
                    })
            })
            .collect();
        let line_of = |cells: &[String], style: Style| {
            let spans: Vec<Span> = (cells.iter().zip(&widths).enumerate())
                .map(|(c, (text, w))| {
                    let text = cut(text, *w as u16);
                    let padded = match rows.numeric.get(c).copied().unwrap_or(false) {
                        true => format!("{text:>w$} "),
                        false => format!("{text:<w$} "),
                    };
                    Span::styled(padded, style)
                })
                .collect();
            Line::from(spans)
        };
        if rows.is_empty() {
            lines.push(Line::from(Span::styled("  none", THEME.muted)));
        } else {
            lines.push(line_of(&rows.columns, THEME.header));
            for cells in &rows.cells {
                lines.push(line_of(cells, THEME.text));
            }
        }
        lines.push(Line::default());
    }
    let visible = area.height.saturating_sub(2) as usize;
    let scroll = scroll.min(lines.len().saturating_sub(visible)) as u16;
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(block)
            .scroll((scroll, 0)),
        area,
    );
}

fn status(frame: &mut Frame, app: &App, area: Rect) {
    if let Some(text) = &app.typing {
        let line = Line::from(vec![
            Span::styled(" filter: ", THEME.header),
            Span::raw(text.clone()),
            Span::styled("▏", THEME.accent),
            Span::styled(
                "   Enter keep · Esc clear · column:value matches one column",
                THEME.muted,
            ),
        ]);
        frame.render_widget(line, area);
        return;
    }
    if let Some(said) = &app.said {
        let line = Line::from(Span::styled(format!(" {said}"), THEME.accent));
        frame.render_widget(Paragraph::new(line).style(THEME.status), area);
        return;
    }
    let s = &app.board.status;
    let left = match (&app.notice, s.as_of) {
        (Some(notice), _) => Span::styled(format!(" {notice}"), THEME.bad),
        (None, None) => Span::styled(" loading the state…", THEME.muted),
        (None, Some(_)) => Span::styled(
            format!(
                " refresh #{} at {} · {} files applied · {} quarantined{}",
                s.sequence,
                s.refreshed_at,
                s.files_applied,
                s.quarantined,
                if s.preparing {
                    " · preparing the models…"
                } else {
                    ""
                }
            ),
            if s.quarantined > 0 {
                THEME.warn
            } else {
                THEME.text
            },
        ),
    };
    frame.render_widget(Paragraph::new(Line::from(left)).style(THEME.status), area);
    let keys = match (app.on_board(), area.width >= 120) {
        (true, true) => "Tab focus · / filter · s sort · ⏎ drill · ? help · q quit ",
        (false, true) => {
            "c contact · p promise · d dispute · r close dispute · Esc back · ? help · q quit "
        }
        (_, false) => " ? help · q quit ",
    };
    frame.render_widget(
        Paragraph::new(Span::styled(keys, THEME.status)).alignment(Alignment::Right),
        Rect {
            x: area.x + area.width.saturating_sub(keys.chars().count() as u16),
            width: keys.chars().count() as u16,
            ..area
        },
    );
}

const HELP: &[(&str, &str)] = &[
    ("1-9  ← → [ ]", "switch tabs"),
    ("Tab  Shift-Tab", "focus the next / previous list"),
    (
        "↑ ↓  j k  PgUp PgDn",
        "move in the list (g / G: first / last)",
    ),
    ("/", "filter the list: words match any column,"),
    (
        "",
        "  column:value one column (collector:C01 segment:high currency:EUR)",
    ),
    ("s  S", "sort on the next column / reverse the sort"),
    ("Enter", "drill into the customer: open invoices, disputes,"),
    ("", "  promises, risk reasons, outreach history"),
    (
        "c  p  d  r",
        "in a customer: log a contact, record a promise, open",
    ),
    ("", "  a dispute, close one (start with --as YOUR-ID)"),
    (
        "H  O  R",
        "in a customer: put on hold, opt out of outreach, release",
    ),
    ("Esc", "back (or clear the filter)"),
    (
        "mouse",
        "click a list to focus it and pick a row; wheel scrolls",
    ),
    ("?", "this help (any key closes it)"),
    ("q  Ctrl-C", "quit"),
];

/// A form over the customer's detail: each field, what is wrong with it as typed, and why
/// the state refused it, if it did.
fn form(frame: &mut Frame, form: &super::form::Form, area: Rect) {
    let problems = form.problems();
    let mut lines = Vec::new();
    for (i, (field, problem)) in form.fields.iter().zip(&problems).enumerate() {
        let focused = i == form.focus;
        let mut spans = vec![
            Span::styled(
                format!(" {} {:<9}", if focused { "›" } else { " " }, field.label),
                THEME.header,
            ),
            Span::raw(field.value.clone()),
        ];
        if focused {
            spans.push(Span::styled("▏", THEME.accent));
        }
        lines.push(Line::from(spans));
        let note = match problem {
            Some(problem) => Span::styled(format!("             {problem}"), THEME.bad),
            None if focused && !field.hint.is_empty() => {
                Span::styled(format!("             {}", field.hint), THEME.muted)
            }
            None => Span::raw(""),
        };
        lines.push(Line::from(note));
    }
    if let Some(refused) = &form.refused {
        lines.push(Line::from(Span::styled(
            format!(" not recorded: {refused}"),
            THEME.bad,
        )));
    }
    let footer = match form.sending {
        true => " recording…",
        false => " Enter record · Tab next field · ←/→ choose · Esc cancel",
    };
    lines.push(Line::from(Span::styled(footer, THEME.muted)));
    let width = 100.min(area.width);
    // Room for a sentence that wraps.
    let height = (lines.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let title = format!(" {} · {} ", form.kind.title(), form.customer_id);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(THEME.border_focused)
                    .title(Span::styled(title, THEME.title)),
            ),
        popup,
    );
}

fn help(frame: &mut Frame, area: Rect) {
    let width = 76.min(area.width);
    let height = (HELP.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = (HELP.iter())
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<20}"), THEME.header),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(Text::from(lines)).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(THEME.border_focused)
                .title(Span::styled(" Keys ", THEME.title)),
        ),
        popup,
    );
}

#[cfg(test)]
mod tests {
    //! Every panel drawn from fixed data, at 80x24 and 160x48, and the drill-down and help
    //! screens (snapshots in `snapshots/`; review a change with `cargo insta review`, or
    //! `INSTA_UPDATE=always` and `git diff`).

    use chrono::NaiveDate;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::app::App;
    use super::super::board::{Board, Detail, Forecast, Prepared, Rows, Status, Tile, Unit, Week};
    use super::super::layout;
    use super::draw;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn rows(columns: &[&str], numeric: &[bool], cells: &[&[&str]]) -> Rows {
        Rows {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            numeric: numeric.to_vec(),
            cells: cells
                .iter()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect(),
            numbers: (cells.iter())
                .map(|r| {
                    (r.iter().zip(numeric))
                        .map(|(c, n)| match n {
                            true => c.replace(',', "").parse().unwrap_or(f64::NAN),
                            false => f64::NAN,
                        })
                        .collect()
                })
                .collect(),
            more: None,
            note: None,
        }
    }

    /// A board for the shipped controller layout with every panel prepared.
    fn board(layout: &layout::Layout) -> Board {
        let history = |start: f64, step: f64| -> Vec<f64> {
            (0..13).map(|i| start + step * i as f64).collect()
        };
        let tile = |label, value: f64, unit, previous, history, higher_is_better| Tile {
            label,
            value: Some(value),
            unit,
            previous: Some(previous),
            history,
            higher_is_better,
        };
        let tiles = vec![
            tile(
                "Total AR",
                14_090_000.0,
                Unit::Money,
                12_640_000.0,
                history(9e6, 4e5),
                false,
            ),
            tile(
                "Past due",
                5_360_000.0,
                Unit::Money,
                4_408_000.0,
                history(3e6, 2e5),
                false,
            ),
            tile("DSO", 57.2, Unit::Days, 49.7, history(40.0, 1.4), false),
            tile(
                "Best DSO",
                35.4,
                Unit::Days,
                32.4,
                history(30.0, 0.5),
                false,
            ),
            tile("ADD", 21.7, Unit::Days, 17.3, history(10.0, 1.0), false),
            tile(
                "CEI",
                0.795,
                Unit::Percent,
                0.838,
                history(0.90, -0.01),
                true,
            ),
            Tile {
                previous: None,
                ..tile("PTP kept", 0.505, Unit::Percent, 0.0, vec![], true)
            },
        ];
        let aging: Vec<(String, f64)> = ["current", "1-30", "31-60", "61-90", "91-120", "121+"]
            .iter()
            .zip([8.73e6, 3.17e6, 1.55e6, 2.1e5, 4.4e4, 3.8e5])
            .map(|(b, v)| (b.to_string(), v))
            .collect();
        let dso: Vec<(NaiveDate, f64)> = (0..13)
            .map(|i| {
                (
                    day("2025-01-31") + chrono::Months::new(i),
                    [
                        78.0, 60.0, 41.0, 35.0, 38.0, 45.0, 47.0, 48.0, 47.5, 50.0, 52.0, 54.0,
                        57.2,
                    ][i as usize],
                )
            })
            .collect();
        let segments = rows(
            &[
                "segment",
                "customers",
                "open_amount",
                "past_due",
                "expected_at_risk",
            ],
            &[false, true, true, true, true],
            &[
                &["low", "120", "4,123,774.17", "1,020,202.05", "412,999.84"],
                &["medium", "21", "1,317.15", "429.70", "398.03"],
                &["high", "25", "2,603,300.00", "1,792,630.00", "1,807,380.00"],
                &[
                    "critical",
                    "33",
                    "5,632,230.00",
                    "3,319,500.00",
                    "4,427,020.00",
                ],
            ],
        );
        let worklist = rows(
            &[
                "rank",
                "customer_id",
                "name",
                "segment",
                "probability",
                "expected_at_risk",
                "past_due",
                "days",
                "next_action",
                "collector",
                "customer_currency",
            ],
            &[
                true, false, false, false, true, true, true, true, false, false, false,
            ],
            &[
                &[
                    "1",
                    "C000014",
                    "Quinlan Foods",
                    "critical",
                    "0.86",
                    "1,340,000.00",
                    "974,200.00",
                    "61",
                    "follow up promise",
                    "COL01",
                    "EUR",
                ],
                &[
                    "2",
                    "C000102",
                    "Holzwerk AG",
                    "critical",
                    "0.85",
                    "907,100.00",
                    "495,700.00",
                    "65",
                    "follow up promise",
                    "COL02",
                    "JPY",
                ],
                &[
                    "3",
                    "C000031",
                    "Gallant Ltd",
                    "critical",
                    "0.88",
                    "788,200.00",
                    "298,400.00",
                    "205",
                    "escalate",
                    "",
                    "EUR",
                ],
                &[
                    "4",
                    "C000057",
                    "Quincy Tools",
                    "critical",
                    "0.83",
                    "528,100.00",
                    "283,600.00",
                    "40",
                    "escalate",
                    "",
                    "EUR",
                ],
                &[
                    "5",
                    "C000084",
                    "Galsol Industries",
                    "high",
                    "0.78",
                    "485,500.00",
                    "359,300.00",
                    "306",
                    "call",
                    "COL03",
                    "EUR",
                ],
                &[
                    "6",
                    "C000009",
                    "Xanthe SARL",
                    "high",
                    "0.79",
                    "145,100.00",
                    "92,400.00",
                    "49",
                    "reminder",
                    "COL01",
                    "EUR",
                ],
            ],
        );
        let outreach = rows(
            &[
                "day",
                "customer_id",
                "channel",
                "stage",
                "status",
                "to",
                "invoices",
            ],
            &[false, false, false, false, false, false, true],
            &[
                &[
                    "2025-12-31",
                    "C000014",
                    "email",
                    "final-notice",
                    "sent (outbox)",
                    "ap@quinlan.example",
                    "3",
                ],
                &[
                    "2025-12-31",
                    "C000102",
                    "sms",
                    "sms-reminder",
                    "FAILED: malformed phone number '12'",
                    "12",
                    "1",
                ],
                &[
                    "2025-12-30",
                    "C000031",
                    "email",
                    "reminder-1",
                    "waiting: SMTP: connection refused",
                    "ar@gallant.example",
                    "2",
                ],
            ],
        );
        let health = rows(
            &["", ""],
            &[false, false],
            &[
                &["last file", "payments/month=2025-12/part-0004.parquet"],
                &["files applied", "121"],
                &["quarantined", "1"],
                &["last change", "2025-12-31T18:48:07Z"],
                &[
                    "✗ invoices/bad.parquet",
                    "[missing_column] column 'due_date' is missing",
                ],
            ],
        );
        let weeks = (0..13)
            .map(|i| {
                let expected = 2.4e6 - 1.5e5 * i as f64;
                Week {
                    start: day("2026-01-01") + chrono::Days::new(7 * i),
                    expected,
                    low: expected * 0.8,
                    high: expected * 1.15,
                }
            })
            .collect();
        let forecast = Forecast {
            weeks,
            wape: Some(0.126),
            wape_due_date: Some(0.564),
            wape_average_delay: Some(0.276),
            band_coverage: Some(0.846),
        };
        let stats = rows(
            &["reason", "disputes", "amount"],
            &[false, true, true],
            &[
                &["pricing", "12", "45,000.00"],
                &["quality", "3", "9,800.50"],
            ],
        );
        let mut panels = std::collections::HashMap::new();
        for (id, (_, panel)) in layout.panels().into_iter().enumerate() {
            let prepared = match panel.kind {
                layout::Kind::Kpis => Prepared::Tiles(tiles.clone()),
                layout::Kind::Aging => Prepared::Bars(aging.clone()),
                layout::Kind::DsoTrend => Prepared::Line(dso.clone()),
                layout::Kind::Segments => Prepared::Rows(segments.clone()),
                layout::Kind::Worklist => Prepared::Rows(worklist.clone()),
                layout::Kind::Forecast => Prepared::Forecast(forecast.clone()),
                layout::Kind::Outreach => Prepared::Rows(outreach.clone()),
                layout::Kind::Health => Prepared::Rows(health.clone()),
                layout::Kind::Table if id % 2 == 0 => {
                    Prepared::Failed("table 'promise_statz' not found".into())
                }
                layout::Kind::Table => Prepared::Rows(stats.clone()),
            };
            panels.insert(id, prepared);
        }
        Board {
            status: Status {
                as_of: Some(day("2025-12-31")),
                currency: "USD".into(),
                sequence: 3,
                generation: 12,
                refreshed_at: "12:03:04".into(),
                files_applied: 121,
                quarantined: 1,
                preparing: false,
            },
            panels,
        }
    }

    fn controller() -> App {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
        let layout = layout::find(&folder, "controller").unwrap();
        let mut app = App::new(layout.clone());
        app.set_board(board(&layout));
        app
    }

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        terminal.backend().to_string()
    }

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    /// The snapshots hold the text; a list's colours are checked here: its header in the
    /// header's, the selected row in the selection's across the list, a number right-aligned.
    #[test]
    fn a_list_colours_its_header_and_selected_row() {
        let mut app = controller();
        press(&mut app, KeyCode::Char('2'));
        let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
        terminal.draw(|frame| draw(frame, &mut app)).unwrap();
        let buffer = terminal.backend().buffer();
        let row = |y: u16| -> String { (0..160).map(|x| buffer[(x, y)].symbol()).collect() };
        let header_y = (0..48).find(|&y| row(y).contains("customer")).unwrap();
        let x = row(header_y).find("customer").unwrap() as u16;
        let header = &buffer[(x, header_y)];
        assert_eq!(header.fg, super::THEME.header.fg.unwrap());
        assert!(header.modifier.contains(super::THEME.header.add_modifier));
        // The first row is selected: its colours run across the list, gaps included.
        let first = header_y + 1;
        for x in [1, 2, 40, 158] {
            assert_eq!(
                buffer[(x, first)].bg,
                super::THEME.selected.bg.unwrap(),
                "x {x}"
            );
        }
        assert_ne!(buffer[(1, first + 1)].bg, super::THEME.selected.bg.unwrap());
    }

    #[test]
    fn every_tab_at_80x24_and_160x48() {
        for (width, height) in [(80, 24), (160, 48)] {
            let mut app = controller();
            for tab in 0..app.layout.tabs.len() {
                press(&mut app, KeyCode::Char(char::from(b'1' + tab as u8)));
                insta::assert_snapshot!(
                    format!("tab{}_{width}x{height}", tab + 1),
                    screen(&mut app, width, height)
                );
            }
        }
    }

    #[test]
    fn loading_before_the_first_snapshot() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
        let mut app = App::new(layout::find(&folder, "controller").unwrap());
        insta::assert_snapshot!("loading_80x24", screen(&mut app, 80, 24));
    }

    #[test]
    fn the_worklist_filtered_sorted_and_drilled_into() {
        let mut app = controller();
        press(&mut app, KeyCode::Char('2'));
        press(&mut app, KeyCode::Char('/'));
        for c in "segment:crit".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        insta::assert_snapshot!("worklist_typing_filter_80x24", screen(&mut app, 80, 24));
        press(&mut app, KeyCode::Enter);
        // Sort on rank, then descending on it.
        press(&mut app, KeyCode::Char('s'));
        press(&mut app, KeyCode::Char('s'));
        press(&mut app, KeyCode::Down);
        insta::assert_snapshot!("worklist_filtered_sorted_160x48", screen(&mut app, 160, 48));
        let ask = app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        let Some(super::super::app::Ask::Detail { customer_id, name }) = ask else {
            panic!("Enter on a worklist row drills into its customer");
        };
        assert_eq!(
            (customer_id.as_str(), name.as_str()),
            ("C000031", "Gallant Ltd")
        );
        insta::assert_snapshot!("detail_loading_80x24", screen(&mut app, 80, 24));
        app.set_detail(Detail {
            customer_id: customer_id.clone(),
            name,
            sections: Some(vec![
                (
                    "Risk".into(),
                    rows(
                        &["segment", "probability", "reasons"],
                        &[false, true, false],
                        &[&[
                            "critical",
                            "0.83",
                            "pays 41 days after due on average; 3 invoices over 60 days",
                        ]],
                    ),
                ),
                (
                    "Open invoices".into(),
                    rows(
                        &[
                            "invoice_id",
                            "due_date",
                            "currency",
                            "open_amount",
                            "days_past_due",
                        ],
                        &[false, false, false, true, true],
                        &[
                            &["INV0001", "2025-11-12", "EUR", "12,833.57", "49"],
                            &["INV0002", "2025-12-03", "EUR", "19,843.52", "28"],
                        ],
                    ),
                ),
                (
                    "Disputes".into(),
                    rows(
                        &["dispute_id", "reason", "status"],
                        &[false, false, false],
                        &[],
                    ),
                ),
                (
                    "Promises".into(),
                    rows(
                        &["promise_id", "promised_date", "amount"],
                        &[false, false, true],
                        &[&["P17", "2026-01-05", "5,000.00"]],
                    ),
                ),
                (
                    "Outreach".into(),
                    rows(
                        &["day", "channel", "stage", "status"],
                        &[false, false, false, false],
                        &[&["2025-12-30", "email", "reminder-1", "sent (outbox)"]],
                    ),
                ),
            ]),
        });
        insta::assert_snapshot!("detail_80x24", screen(&mut app, 80, 24));
        insta::assert_snapshot!("detail_160x48", screen(&mut app, 160, 48));
        press(&mut app, KeyCode::Esc);
        assert!(app.on_board(), "Esc goes back to the board");
    }

    #[test]
    fn the_help_screen() {
        let mut app = controller();
        press(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!("help_80x24", screen(&mut app, 80, 24));
        insta::assert_snapshot!("help_160x48", screen(&mut app, 160, 48));
        press(&mut app, KeyCode::Char('x'));
        assert!(!app.help && !app.quit, "any key closes the help");
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit);
    }
}
