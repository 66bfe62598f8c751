//! Drawing a frame from the [`App`]: the tab bar, the current tab's panels (or the customer
//! drilled into), the status line, and the help over them. Only prepared rows are read, and
//! of a list only the rows on the screen, so a frame costs the same at any size of state.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout as Split, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, Borders, Cell, Chart, Clear, Dataset, GraphType,
    Paragraph, Row as TableRow, Sparkline, Table, Wrap,
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
    match app.stack.last().cloned() {
        Some(Screen::Detail { detail, scroll }) => {
            super::draw::detail(frame, &detail, scroll, body, &app.breadcrumb())
        }
        _ => board(frame, app, body),
    }
    status(frame, app, bottom);
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
    let tab = app.layout.tabs[app.tab].clone();
    let rows = Split::vertical(tab.rows.iter().map(|r| constraint(r.height))).split(area);
    let first_id = app.panels_of_tab().first().copied().unwrap_or(0);
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
            let prepared = app.board.panels.get(&id).cloned();
            match prepared {
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
                    Paragraph::new(Span::styled(error, THEME.bad))
                        .wrap(Wrap { trim: true })
                        .block(block),
                    *cell,
                ),
                Some(Prepared::Tiles(tiles)) => {
                    self::tiles(frame, &tiles, &app.board.status.currency, block, *cell)
                }
                Some(Prepared::Bars(bars)) => aging(frame, &bars, block, *cell),
                Some(Prepared::Line(points)) => trend(frame, &points, block, *cell),
                Some(Prepared::Forecast(f)) => forecast(frame, &f, block, *cell),
                Some(Prepared::Rows(rows)) => {
                    let inner_rows = cell.height.saturating_sub(3) as usize;
                    app.page = inner_rows.max(1);
                    let view = app.lists.entry(id).or_default();
                    list(frame, &rows, view, focused, panel.kind, block, *cell);
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

fn value_text(v: Option<f64>, unit: Unit) -> String {
    match (v, unit) {
        (None, _) => "n/a".into(),
        (Some(v), Unit::Money) => compact(v),
        (Some(v), Unit::Days) => format!("{v:.1} d"),
        (Some(v), Unit::Percent) => format!("{:.1} %", v * 100.0),
        (Some(v), Unit::Points) => format!("{v:.1} %"),
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
        Unit::Points => format!("{:.1} pt", delta.abs()),
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
    Span::styled(format!("{arrow} {shown} m/m"), style)
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
    let items: Vec<Bar> = (bars.iter().enumerate())
        .map(|(i, (label, v))| {
            let style = match i {
                0 => THEME.good,
                1 => THEME.text,
                2 => THEME.warn,
                _ => THEME.bad,
            };
            Bar::default()
                .value((v.max(0.0) / max * 1000.0) as u64)
                .text_value(compact(*v))
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
    let note = format!(
        " WAPE {} · due-date {} · avg-delay {} · band {} ",
        pct(f.wape),
        pct(f.wape_due_date),
        pct(f.wape_average_delay),
        pct(f.band_coverage)
    );
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
                format!(
                    " expected {} in {} weeks, 80 % band ",
                    compact(total),
                    f.weeks.len()
                ),
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
/// columns shrink. Returns the widths and, per column, whether its numbers are written short.
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
    let fits = |w: &[u16]| w.iter().sum::<u16>() + n.saturating_sub(1) as u16 <= room;
    let mut short = vec![false; n];
    let mut w: Vec<u16> = (0..n).map(|c| widest(c, false)).collect();
    if !fits(&w) {
        for c in (0..n).filter(|&c| rows.numeric.get(c).copied().unwrap_or(false)) {
            short[c] = true;
            w[c] = widest(c, true);
        }
    }
    while !fits(&w) {
        let Some(c) = (0..n)
            .filter(|&c| !rows.numeric[c] && w[c] > 4)
            .max_by_key(|&c| w[c])
        else {
            break;
        };
        w[c] -= 1;
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
    let block = block.title_bottom(
        Line::from(Span::styled(format!("{} ", notes.join(" · ")), THEME.muted)).right_aligned(),
    );
    let (widths, short) = widths(rows, &shown, area.width.saturating_sub(2));
    let numeric = |c: usize| rows.numeric.get(c).copied().unwrap_or(false);
    let header = TableRow::new(rows.columns.iter().enumerate().map(|(c, name)| {
        let name = cut(name, widths[c]);
        match numeric(c) {
            true => Cell::from(Line::from(name).right_aligned()).style(THEME.header),
            false => Cell::from(name).style(THEME.header),
        }
    }));
    let body: Vec<TableRow> = (shown.iter())
        .map(|&i| {
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
            TableRow::new(rows.cells[i].iter().enumerate().map(|(c, text)| {
                match (numeric(c), short[c]) {
                    (true, true) if !rows.numbers[i][c].is_nan() => {
                        Cell::from(Line::from(compact(rows.numbers[i][c])).right_aligned())
                    }
                    (true, _) => Cell::from(Line::from(text.clone()).right_aligned()),
                    (false, _) => Cell::from(cut(text, widths[c])),
                }
            }))
            .style(style)
        })
        .collect();
    let widths: Vec<Constraint> = widths.into_iter().map(Constraint::Length).collect();
    let mut table = Table::new(body, widths).block(block).column_spacing(1);
    if kind != Kind::Health {
        table = table.header(header);
    }
    frame.render_widget(table, area);
    if rows.is_empty() {
        let inner = Rect {
            y: area.y + 2,
            height: 1,
            ..area.inner(ratatui::layout::Margin::new(1, 0))
        };
        frame.render_widget(Span::styled("nothing to show", THEME.muted), inner);
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
                    .min(48)
            })
            .collect();
        let line_of = |cells: &[String], style: Style| {
            let spans: Vec<Span> = (cells.iter().zip(&widths).enumerate())
                .map(|(c, (text, w))| {
                    let text: String = text.chars().take(*w).collect();
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
    let scroll = scroll.min(lines.len().saturating_sub(1)) as u16;
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
    let keys = match app.on_board() {
        true => "Tab focus · / filter · s sort · ⏎ drill · ? help · q quit ",
        false => "Esc back · ? help · q quit ",
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
    ("Esc", "back (or clear the filter)"),
    (
        "mouse",
        "click a list to focus it and pick a row; wheel scrolls",
    ),
    ("?", "this help (any key closes it)"),
    ("q  Ctrl-C", "quit"),
];

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
