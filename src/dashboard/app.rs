//! The dashboard's state between frames and what keys do to it: the tab, the panel in focus,
//! each list's scroll, filter and sort, the drill-down stack and the help screen. Nothing here
//! runs a query: a drill-down asks for one ([`Ask`]) and its answer comes back later.

use std::collections::HashMap;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use super::board::{Board, Detail, Prepared, Rows};
use super::form::{Form, FormKind, Known};
use super::layout::{Kind, Layout};
use crate::actions::Action;

/// A list's view: which rows, in which order, from where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListView {
    /// Rows of the prepared table shown, in order (filtered and sorted).
    pub order: Vec<usize>,
    pub selected: usize,
    pub offset: usize,
    pub filter: String,
    /// Column sorted on and whether descending.
    pub sort: Option<(usize, bool)>,
}

/// What the dashboard asks of the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Detail {
        customer_id: String,
        name: String,
    },
    /// Record what a form made (checked against the state, written to the actions feed).
    Record(Action),
}

/// What is on the screen over the board.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    Board,
    Detail { detail: Detail, scroll: usize },
}

pub struct App {
    pub layout: Layout,
    pub board: Board,
    pub tab: usize,
    /// Panel id in focus (a list of the current tab), if any.
    pub focus: Option<usize>,
    pub lists: HashMap<usize, ListView>,
    /// The filter being typed (after `/`), for the panel in focus.
    pub typing: Option<String>,
    pub help: bool,
    pub stack: Vec<Screen>,
    pub quit: bool,
    /// Where each panel was drawn last (for the mouse).
    pub areas: Vec<(usize, Rect)>,
    /// Rows a list showed last (for paging).
    pub page: usize,
    /// The runner's last failure, shown until the next snapshot.
    pub notice: Option<String>,
    /// The form being filled over a customer's detail.
    pub form: Option<Form>,
    /// Who records actions (`--as`); none: the forms say how to say who one is.
    pub who: Option<String>,
    /// What the last action recorded (or why none could be), until the next key.
    pub said: Option<String>,
}

impl App {
    pub fn new(layout: Layout) -> App {
        let mut app = App {
            layout,
            board: Board::default(),
            tab: 0,
            focus: None,
            lists: HashMap::new(),
            typing: None,
            help: false,
            stack: vec![Screen::Board],
            quit: false,
            areas: Vec::new(),
            page: 10,
            notice: None,
            form: None,
            who: None,
            said: None,
        };
        app.focus = app.lists_of_tab().first().copied();
        app
    }

    /// The ids of the current tab's panels, and of those that are lists.
    pub fn panels_of_tab(&self) -> Vec<usize> {
        (self.layout.panels().into_iter().enumerate())
            .filter(|(_, (t, _))| *t == self.tab)
            .map(|(id, _)| id)
            .collect()
    }

    fn lists_of_tab(&self) -> Vec<usize> {
        let panels = self.layout.panels();
        (self.panels_of_tab().into_iter())
            .filter(|id| panels[*id].1.kind.is_list())
            .collect()
    }

    pub fn kind(&self, id: usize) -> Kind {
        self.layout.panels()[id].1.kind
    }

    /// A new board: every list's view is made again over its new rows (keeping filter, sort
    /// and, where it can, the selected row).
    /// Returns the customer's detail to ask again when one is on the screen (what changed
    /// in the new snapshot, an action just recorded among it).
    pub fn set_board(&mut self, board: Board) -> Option<Ask> {
        let newer = board.status.sequence != self.board.status.sequence;
        self.board = board;
        self.notice = None;
        let ids: Vec<usize> = self.board.panels.keys().copied().collect();
        for id in ids {
            self.refilter(id);
        }
        match self.stack.last() {
            Some(Screen::Detail { detail, .. }) if newer => Some(Ask::Detail {
                customer_id: detail.customer_id.clone(),
                name: detail.name.clone(),
            }),
            _ => None,
        }
    }

    /// The rows of list `id`, if prepared.
    pub fn rows(&self, id: usize) -> Option<&Rows> {
        match self.board.panels.get(&id) {
            Some(Prepared::Rows(rows)) => Some(rows),
            _ => None,
        }
    }

    /// Make list `id`'s order again from its filter and sort.
    fn refilter(&mut self, id: usize) {
        let Some(Prepared::Rows(rows)) = self.board.panels.get(&id) else {
            return;
        };
        let view = self.lists.entry(id).or_default();
        view.order = filtered(rows, &view.filter);
        if let Some((column, descending)) = view.sort {
            sort(rows, &mut view.order, column, descending);
        }
        view.selected = view.selected.min(view.order.len().saturating_sub(1));
        view.offset = view.offset.min(view.selected);
    }

    /// Handle one key; a drill-down returns what to ask the worker.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Ask> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return None;
        }
        if self.form.is_some() {
            return self.on_form_key(key);
        }
        self.said = None;
        if let Some(text) = &mut self.typing {
            match key.code {
                KeyCode::Enter => self.typing = None,
                KeyCode::Esc => {
                    self.typing = None;
                    self.set_filter(String::new());
                }
                KeyCode::Backspace => {
                    text.pop();
                    let text = text.clone();
                    self.set_filter(text);
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    let text = text.clone();
                    self.set_filter(text);
                }
                _ => {}
            }
            return None;
        }
        if self.help {
            // Any key closes the help; `q` also quits.
            self.help = false;
            self.quit = key.code == KeyCode::Char('q');
            return None;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc if self.stack.len() > 1 => {
                self.stack.pop();
            }
            KeyCode::Esc => {
                if let Some(id) = self.focus
                    && self.lists.get(&id).is_some_and(|v| !v.filter.is_empty())
                {
                    self.set_filter(String::new());
                }
            }
            KeyCode::Tab => self.cycle_focus(1),
            KeyCode::BackTab => self.cycle_focus(-1),
            KeyCode::Right | KeyCode::Char(']') | KeyCode::Char('l') if self.on_board() => {
                self.switch_tab(1)
            }
            KeyCode::Left | KeyCode::Char('[') | KeyCode::Char('h') if self.on_board() => {
                self.switch_tab(-1)
            }
            KeyCode::Char(c @ '1'..='9') if self.on_board() => {
                let tab = c as usize - '1' as usize;
                if tab < self.layout.tabs.len() {
                    self.tab = tab;
                    self.focus = self.lists_of_tab().first().copied();
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::PageDown => self.scroll(self.page as isize),
            KeyCode::PageUp => self.scroll(-(self.page as isize)),
            KeyCode::Home | KeyCode::Char('g') => self.scroll(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.scroll(isize::MAX / 2),
            KeyCode::Char('/') if self.on_board() && self.focus.is_some() => {
                let current = self
                    .focus
                    .and_then(|id| self.lists.get(&id))
                    .map(|v| v.filter.clone());
                self.typing = Some(current.unwrap_or_default());
            }
            KeyCode::Char('s') if self.on_board() => self.cycle_sort(false),
            KeyCode::Char('S') if self.on_board() => self.cycle_sort(true),
            KeyCode::Enter if self.on_board() => return self.drill(),
            KeyCode::Char('c') if !self.on_board() => self.open_form(FormKind::Contact),
            KeyCode::Char('p') if !self.on_board() => self.open_form(FormKind::Promise),
            KeyCode::Char('d') if !self.on_board() => self.open_form(FormKind::Dispute),
            KeyCode::Char('r') if !self.on_board() => self.open_form(FormKind::Resolve),
            KeyCode::Char('H') if !self.on_board() => self.open_form(FormKind::Hold),
            KeyCode::Char('O') if !self.on_board() => self.open_form(FormKind::OptOut),
            KeyCode::Char('R') if !self.on_board() => self.open_form(FormKind::Release),
            _ => {}
        }
        None
    }

    /// A key while a form is open: typing, moving between fields, Enter to record, Esc to
    /// leave it.
    fn on_form_key(&mut self, key: KeyEvent) -> Option<Ask> {
        let form = self.form.as_mut()?;
        match key.code {
            KeyCode::Esc => self.form = None,
            KeyCode::Tab | KeyCode::Down => form.move_focus(1),
            KeyCode::BackTab | KeyCode::Up => form.move_focus(-1),
            KeyCode::Left => form.cycle(-1),
            KeyCode::Right => form.cycle(1),
            KeyCode::Backspace => form.backspace(),
            KeyCode::Enter if !form.sending => match form.action() {
                Some(action) => {
                    form.sending = true;
                    return Some(Ask::Record(action));
                }
                // The first field that is wrong, to fix.
                None => {
                    let problems = form.problems();
                    form.focus = problems.iter().position(Option::is_some).unwrap_or(0);
                }
            },
            KeyCode::Char(c) => form.type_char(c),
            _ => {}
        }
        None
    }

    /// A form over the customer on the screen, checked against its detail as shown.
    fn open_form(&mut self, kind: FormKind) {
        let Some(Screen::Detail { detail, .. }) = self.stack.last() else {
            return;
        };
        if self.who.is_none() {
            self.said = Some(
                "to record what you did, start the dashboard with --as YOUR-ID (or set ARSTREAM_USER)"
                    .to_string(),
            );
            return;
        }
        let section = |title: &str| {
            (detail.sections.iter().flatten())
                .find(|(t, _)| t == title)
                .map(|(_, rows)| rows)
        };
        let mut known = Known {
            as_of: self.board.status.as_of,
            ..Known::default()
        };
        if let Some(rows) = section("Open invoices")
            && let (Some(id), Some(open)) = (rows.column("invoice_id"), rows.column("open_amount"))
        {
            known.invoices = (rows.cells.iter().zip(&rows.numbers))
                .map(|(cells, numbers)| (cells[id].clone(), numbers[open]))
                .collect();
        }
        if let Some(rows) = section("Disputes")
            && let (Some(id), Some(status)) = (rows.column("dispute_id"), rows.column("status"))
        {
            known.disputes = (rows.cells.iter())
                .filter(|cells| cells[status] == "open")
                .map(|cells| cells[id].clone())
                .collect();
        }
        self.form = Some(Form::new(kind, detail.customer_id.clone(), known));
    }

    /// What recording the form's action came to: the form closes with a line saying so, or
    /// stays open with why the state refused it.
    pub fn recorded(&mut self, outcome: Result<String, String>) {
        match outcome {
            Ok(summary) => {
                self.form = None;
                self.said = Some(format!(
                    "recorded {summary}; on the screen after the next refresh"
                ));
            }
            Err(why) => {
                if let Some(form) = &mut self.form {
                    form.sending = false;
                    form.refused = Some(why);
                }
            }
        }
    }

    /// A mouse click focuses the panel under it and selects the row; the wheel scrolls.
    pub fn on_mouse(&mut self, mouse: MouseEvent) -> Option<Ask> {
        let at = Position::new(mouse.column, mouse.row);
        match mouse.kind {
            MouseEventKind::ScrollDown => self.scroll(3),
            MouseEventKind::ScrollUp => self.scroll(-3),
            MouseEventKind::Down(MouseButton::Left) if self.on_board() => {
                let hit = self.areas.iter().find(|(_, r)| r.contains(at)).copied();
                if let Some((id, area)) = hit
                    && self.kind(id).is_list()
                {
                    self.focus = Some(id);
                    // The border and the header line come first.
                    let line = at.y.saturating_sub(area.y + 2) as usize;
                    if at.y >= area.y + 2
                        && let Some(view) = self.lists.get_mut(&id)
                        && view.offset + line < view.order.len()
                    {
                        view.selected = view.offset + line;
                    }
                }
            }
            _ => {}
        }
        None
    }

    pub fn on_board(&self) -> bool {
        matches!(self.stack.last(), Some(Screen::Board) | None)
    }

    fn switch_tab(&mut self, by: isize) {
        let n = self.layout.tabs.len() as isize;
        self.tab = ((self.tab as isize + by).rem_euclid(n)) as usize;
        self.focus = self.lists_of_tab().first().copied();
    }

    fn cycle_focus(&mut self, by: isize) {
        let lists = self.lists_of_tab();
        if lists.is_empty() {
            return;
        }
        let at = self
            .focus
            .and_then(|f| lists.iter().position(|&id| id == f))
            .unwrap_or(0) as isize;
        self.focus = Some(lists[(at + by).rem_euclid(lists.len() as isize) as usize]);
    }

    fn scroll(&mut self, by: isize) {
        let page = self.page;
        if let Some(Screen::Detail { scroll, detail }) = self.stack.last_mut() {
            // No further than the last screenful (`G` showed a blank screen).
            let last = detail.lines().saturating_sub(page) as isize;
            *scroll = (*scroll as isize + by).clamp(0, last.max(0)) as usize;
            return;
        }
        let Some(view) = self.focus.and_then(|id| self.lists.get_mut(&id)) else {
            return;
        };
        let last = view.order.len().saturating_sub(1) as isize;
        view.selected = (view.selected as isize + by).clamp(0, last.max(0)) as usize;
    }

    fn set_filter(&mut self, text: String) {
        if let Some(id) = self.focus {
            let view = self.lists.entry(id).or_default();
            view.filter = text;
            view.selected = 0;
            view.offset = 0;
            self.refilter(id);
        }
    }

    /// `s`: sort on the next column (ascending, then descending, then the next column);
    /// `S`: reverse the current sort.
    fn cycle_sort(&mut self, reverse: bool) {
        let Some(id) = self.focus else { return };
        let Some(columns) = self.rows(id).map(|r| r.columns.len()) else {
            return;
        };
        let view = self.lists.entry(id).or_default();
        view.sort = match (view.sort, reverse) {
            (Some((c, d)), true) => Some((c, !d)),
            (None, _) => Some((0, false)),
            (Some((c, false)), false) => Some((c, true)),
            (Some((c, true)), false) => Some(((c + 1) % columns.max(1), false)),
        };
        self.refilter(id);
    }

    /// Enter on a row with a customer: the customer's detail.
    fn drill(&mut self) -> Option<Ask> {
        let id = self.focus?;
        let rows = self.rows(id)?;
        let view = self.lists.get(&id)?;
        let row = &rows.cells[*view.order.get(view.selected)?];
        let column = rows.column("customer_id")?;
        let customer_id = row[column].clone();
        let name = rows
            .column("name")
            .map(|c| row[c].clone())
            .unwrap_or_default();
        self.stack.push(Screen::Detail {
            detail: Detail {
                customer_id: customer_id.clone(),
                name: name.clone(),
                sections: None,
            },
            scroll: 0,
        });
        Some(Ask::Detail { customer_id, name })
    }

    /// A drill-down's answer, if it is still on the screen.
    pub fn set_detail(&mut self, answer: Detail) {
        for screen in &mut self.stack {
            if let Screen::Detail { detail, .. } = screen
                && detail.customer_id == answer.customer_id
            {
                *detail = answer.clone();
            }
        }
    }

    /// Where one is: the tab, the panel, the customer drilled into.
    pub fn breadcrumb(&self) -> Vec<String> {
        let mut out = vec![self.layout.tabs[self.tab].name.clone()];
        if let Some(id) = self.focus {
            let title = self.layout.panels()[id].1.title.clone();
            if out[0] != title {
                out.push(title);
            }
        }
        for screen in &self.stack {
            if let Screen::Detail { detail, .. } = screen {
                out.push(match detail.name.is_empty() {
                    true => detail.customer_id.clone(),
                    false => format!("{} {}", detail.customer_id, detail.name),
                });
            }
        }
        out
    }
}

/// The rows matching `filter`: every word must match; `column:value` matches in that column
/// (`collector:C01`, `segment:high`, `currency:EUR`), a bare word in any column. Case is
/// ignored.
pub fn filtered(rows: &Rows, filter: &str) -> Vec<usize> {
    let words: Vec<(Option<usize>, String)> = (filter.split_whitespace())
        .map(|w| match w.split_once(':') {
            Some((column, value)) => {
                let column = column.to_lowercase();
                let found = (rows.columns.iter())
                    .position(|c| c.to_lowercase() == column)
                    .or_else(|| {
                        rows.columns
                            .iter()
                            .position(|c| c.to_lowercase().starts_with(&column))
                    })
                    .or_else(|| {
                        // `currency:EUR` in `customer_currency`.
                        (rows.columns.iter()).position(|c| c.to_lowercase().contains(&column))
                    });
                match found {
                    Some(c) => (Some(c), value.to_lowercase()),
                    None => (None, w.to_lowercase()),
                }
            }
            None => (None, w.to_lowercase()),
        })
        .collect();
    (0..rows.cells.len())
        .filter(|&i| {
            words.iter().all(|(column, word)| match column {
                Some(c) => rows.cells[i][*c].to_lowercase().contains(word.as_str()),
                None => rows.cells[i]
                    .iter()
                    .any(|cell| cell.to_lowercase().contains(word.as_str())),
            })
        })
        .collect()
}

/// Sort `order` on `column`: numbers as numbers (missing last), text as text.
pub fn sort(rows: &Rows, order: &mut [usize], column: usize, descending: bool) {
    let numeric = rows.numeric.get(column).copied().unwrap_or(false);
    order.sort_by(|&a, &b| {
        let ordering = match numeric {
            true => {
                let (x, y) = (rows.numbers[a][column], rows.numbers[b][column]);
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => return std::cmp::Ordering::Greater,
                    (false, true) => return std::cmp::Ordering::Less,
                    _ => x.total_cmp(&y),
                }
            }
            false => rows.cells[a][column].cmp(&rows.cells[b][column]),
        };
        match descending {
            true => ordering.reverse(),
            false => ordering,
        }
    });
}
