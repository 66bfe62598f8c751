//! Pipelines: what a refresh writes for other tools. (Scheduling and `pipelines/*.toml` come
//! next; for now `arstream run --out URL` writes the standard outputs after each refresh.)

pub mod outputs;
