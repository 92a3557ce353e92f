//! A plan as SVG: one column per wave (stages that can run together), an arrow from each
//! stage to those that wait for it. Gates say so in words, not only in their outline.

use maud::{Markup, html};

use crate::workflow::PlannedStage;
use crate::workflow::plan::waves;

const COLUMN: f64 = 190.0;
const BOX_W: f64 = 160.0;
const BOX_H: f64 = 44.0;
const ROW: f64 = 60.0;

pub fn graph(stages: &[PlannedStage]) -> Markup {
    let waves = waves(stages);
    let mut place = vec![(0.0, 0.0); stages.len()];
    for (w, wave) in waves.iter().enumerate() {
        for (r, &i) in wave.iter().enumerate() {
            place[i] = (10.0 + COLUMN * w as f64, 10.0 + ROW * r as f64);
        }
    }
    let rows = waves.iter().map(Vec::len).max().unwrap_or(1);
    let width = 20.0 + COLUMN * waves.len().max(1) as f64;
    let height = 20.0 + ROW * rows as f64;
    html! {
        figure.plan {
            svg viewBox=(format!("0 0 {width} {height}")) width=(width.min(1100.0)) role="img"
                aria-labelledby="plan-title" xmlns="http://www.w3.org/2000/svg" {
                title #plan-title { "The plan in " (waves.len()) " waves" }
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" {}
                    }
                }
                @for (i, s) in stages.iter().enumerate() {
                    @for &a in &s.after {
                        @let (ax, ay) = place[a];
                        @let (bx, by) = place[i];
                        line.edge x1=(ax + BOX_W) y1=(ay + BOX_H / 2.0) x2=(bx) y2=(by + BOX_H / 2.0) marker-end="url(#arrow)" {}
                    }
                }
                @for (i, s) in stages.iter().enumerate() {
                    @let (x, y) = place[i];
                    g class=(if s.approval { "node gate" } else { "node" }) {
                        rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                        text x=(x + 8.0) y=(y + 18.0) { (s.name) }
                        text.kind x=(x + 8.0) y=(y + 36.0) { (s.agent) @if s.approval { " · approval gate" } }
                    }
                }
            }
            figcaption {
                @for (w, wave) in waves.iter().enumerate() {
                    "Wave " (w + 1) ": " (wave.iter().map(|&i| stages[i].name.as_str()).collect::<Vec<_>>().join(", ")) ". "
                }
            }
        }
    }
}
