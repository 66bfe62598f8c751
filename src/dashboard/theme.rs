//! Every colour of the dashboard, in one place. Only the 16 ANSI colours are used, so it reads
//! the same in any terminal's palette (light or dark) and in a 16-colour one.

use ratatui::style::{Color, Modifier, Style};

pub struct Theme {
    pub text: Style,
    pub muted: Style,
    pub title: Style,
    pub border: Style,
    pub border_focused: Style,
    pub header: Style,
    pub selected: Style,
    pub good: Style,
    pub bad: Style,
    pub warn: Style,
    pub accent: Style,
    pub band: Style,
    pub tab: Style,
    pub tab_selected: Style,
    pub status: Style,
}

pub const THEME: Theme = Theme {
    text: Style::new(),
    muted: Style::new().fg(Color::DarkGray),
    title: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
    border: Style::new().fg(Color::DarkGray),
    border_focused: Style::new().fg(Color::Cyan),
    header: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
    selected: Style::new().fg(Color::Black).bg(Color::Cyan),
    good: Style::new().fg(Color::Green),
    bad: Style::new().fg(Color::Red),
    warn: Style::new().fg(Color::Yellow),
    accent: Style::new().fg(Color::Cyan),
    band: Style::new().fg(Color::Blue),
    tab: Style::new().fg(Color::Gray),
    tab_selected: Style::new()
        .fg(Color::Black)
        .bg(Color::Cyan)
        .add_modifier(Modifier::BOLD),
    status: Style::new().fg(Color::Black).bg(Color::Gray),
};
