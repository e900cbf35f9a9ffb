//! One phone's workload for the kill campaign, as its own process (so that it can be killed):
//! reports (some with a photo) and comments, with syncs in between, until the stop file
//! appears. Each step is printed once it is durable on the phone (`made DOC EVENT`,
//! `photo DOC HASH`) and once the server has acknowledged it (`acked EVENT`,
//! `photo_acked HASH`), one line each, so that the campaign knows what was promised even when
//! this process dies in the middle of the next step.

use crate::link::Faulty;
use crate::{Flags, drawn_photo, fast_sync, fast_upload, moment_now, new_case};
use anyhow::{Context, Result};
use gridlink_core::case::{EventKind, Role};
use gridlink_core::store::{PhotoInput, PhotoState, Store, StoreConfig};
use gridlink_core::sync::{HttpTransport, Transport};
use std::collections::HashSet;

pub fn run(flags: &Flags) -> Result<()> {
    let text = |name: &str| flags.text(name).with_context(|| format!("--{name}"));
    let role = Role::from_code(text("role")?).context("--role")?;
    let store = Store::open(
        text("db")?,
        StoreConfig::new(text("device")?, text("user")?, role),
    )?;
    let credentials = store.credentials()?.context("the phone has not enrolled")?;
    let seed = flags.number("seed", 0)?;
    // One server, straight; several nodes (`--url A,B,C`), each over a faulty link, and each
    // sync through one picked at random.
    let urls: Vec<&str> = text("url")?.split(',').collect();
    let mut links: Vec<Box<dyn Transport>> = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let http = HttpTransport::new(url)?.with_token(&credentials.token);
        links.push(if urls.len() > 1 {
            Box::new(Faulty::new(http, seed * 31 + i as u64, 4))
        } else {
            Box::new(http)
        });
    }
    let grid = flags.text("grid").filter(|g| !g.is_empty());
    let stop = std::path::PathBuf::from(text("stop")?);
    let mut rng = fastrand::Rng::with_seed(seed);
    let options = fast_sync(4);
    let mut made: Vec<(String, String)> = Vec::new();
    let mut photos: Vec<String> = Vec::new();
    let mut acked: HashSet<String> = HashSet::new();
    let mut steps = 0u32;
    while !stop.exists() && steps < 200 {
        steps += 1;
        // A person's pace, not a loop's: and within the server's per-device rate limit.
        std::thread::sleep(std::time::Duration::from_millis(rng.u64(10..60)));
        let roll = rng.u8(0..10);
        if roll < 3
            && let Some(grid) = grid
        {
            let id = uuid::Uuid::new_v4().to_string();
            let mut hashes = Vec::new();
            if rng.u8(0..3) == 0 {
                let photo = store.capture_photo(
                    &id,
                    PhotoInput::Bytes(&drawn_photo(rng.u64(..))),
                    moment_now(),
                    None,
                )?;
                println!("photo {id} {}", photo.hash);
                hashes.push(photo.hash.clone());
                photos.push(photo.hash);
            }
            let case = store.report(
                new_case(&id, grid, "随手拍: 楼道堆物", hashes),
                moment_now(),
            )?;
            let event = &case.history[0].id;
            println!("made {id} {event}");
            made.push((id, event.clone()));
        } else if roll < 7 {
            let cases: Vec<String> = store
                .document_ids()?
                .into_iter()
                .filter(|id| uuid::Uuid::parse_str(id).is_ok())
                .collect();
            if cases.is_empty() {
                continue;
            }
            let doc = &cases[rng.usize(..cases.len())];
            let before: HashSet<String> =
                store.case(doc)?.history.into_iter().map(|e| e.id).collect();
            let text = format!("巡查备注 {}", rng.u32(..));
            if let Ok(case) = store.record(doc, EventKind::Comment { text }, moment_now())
                && let Some(event) = case.history.iter().find(|e| !before.contains(&e.id))
            {
                println!("made {doc} {}", event.id);
                made.push((doc.clone(), event.id.clone()));
            }
        } else {
            let transport = &*links[rng.usize(..links.len())];
            if store.sync(transport, &options, &()).is_ok() {
                let _ = store.upload_photos(transport, &fast_upload(4), &());
                let unacked: HashSet<String> = store.unacknowledged()?.into_iter().collect();
                for (doc, event) in &made {
                    if !unacked.contains(doc) && acked.insert(event.clone()) {
                        println!("acked {event}");
                    }
                }
                for hash in &photos {
                    if store.photo_status(hash)?.state == PhotoState::Uploaded
                        && acked.insert(hash.clone())
                    {
                        println!("photo_acked {hash}");
                    }
                }
            }
        }
    }
    Ok(())
}
