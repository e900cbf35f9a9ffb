//! `fuzz-seeds <target> <dir>`: writes the target's seed inputs into `dir`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, dir] = args.as_slice() else {
        eprintln!("用法 / usage: fuzz-seeds <target> <dir>");
        return ExitCode::from(2);
    };
    if !gridlink_fuzz::TARGETS
        .iter()
        .any(|(name, _)| name == target)
    {
        eprintln!("没有目标 {target} / no target {target}");
        return ExitCode::from(2);
    }
    let dir = std::path::Path::new(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("{}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (i, seed) in gridlink_fuzz::seeds(target).iter().enumerate() {
        let path = dir.join(format!("seed-{i:02}"));
        if let Err(e) = std::fs::write(&path, seed) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
