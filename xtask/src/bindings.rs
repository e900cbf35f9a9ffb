//! The phone bindings: `cargo xtask bindings` generates Kotlin, Swift and Python from the
//! built library (uniffi library mode); the foreign-language suites run the multi-role
//! scenario against a real server; `android` and `ios` build the app libraries where the
//! NDK or Xcode exists.

use crate::{root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The languages generated, in the folders under `target/bindings/`.
const LANGUAGES: [&str; 3] = ["kotlin", "swift", "python"];

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn library_file(profile: &str) -> PathBuf {
    let name = if cfg!(target_os = "macos") {
        "libgridlink_ffi.dylib"
    } else {
        "libgridlink_ffi.so"
    };
    target_dir().join(profile).join(name)
}

/// Builds the library and the bindgen (always both: `cargo test` does not refresh the
/// `.so`, and a suite must never load a stale one), then generates every language.
pub(crate) fn bindings(args: &[String]) -> Result<PathBuf> {
    let release = match args {
        [] => false,
        [flag] if flag == "--release" => true,
        other => bail!("usage: cargo xtask bindings [--release], not {other:?}"),
    };
    let profile = if release { "release" } else { "debug" };
    // Two builds, not one: built together, cargo would unify features and the tested library
    // would link uniffi's bindgen, unlike the apps' library.
    for package in ["gridlink-ffi", "gridlink-bindgen"] {
        let mut build = vec!["build", "-p", package];
        if release {
            build.push("--release");
        }
        run(&cargo(), &build)?;
    }
    let library = library_file(profile);
    let bindgen = target_dir().join(profile).join("uniffi-bindgen");
    let out = target_dir().join("bindings");
    for language in LANGUAGES {
        let dir = out.join(language);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        // The bindgen reports on stdout; keep stdout for benchmark lines.
        run_to_stderr(
            &bindgen.to_string_lossy(),
            &[
                "generate",
                "--library",
                &library.to_string_lossy(),
                "--language",
                language,
                "--out-dir",
                &dir.to_string_lossy(),
                "--no-format",
            ],
        )?;
    }
    // Python loads the library from beside the module; the JVM test points JNA here.
    for language in ["python", "kotlin"] {
        let dest = out
            .join(language)
            .join(library.file_name().context("library name")?);
        std::fs::copy(&library, &dest)
            .with_context(|| format!("copying the library to {}", dest.display()))?;
    }
    eprintln!("bindings: Kotlin, Swift and Python in {}", out.display());
    Ok(out)
}

/// Runs a command whose output goes to stderr, whatever stream it writes.
fn run_to_stderr(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("\n==> {program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .with_context(|| format!("could not start {program}"))?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("`{program} {}` failed ({})", args.join(" "), output.status);
    }
    Ok(())
}

/// Debian's JNA (package libjna-java).
const JNA: &str = "/usr/share/java/jna.jar";

/// Compiled classes, JNA and the Kotlin standard library.
fn jvm_classpath(classes: &Path, kotlin_home: &Path) -> String {
    let stdlib = kotlin_home.join("lib").join("kotlin-stdlib.jar");
    [classes, Path::new(JNA), stdlib.as_path()]
        .map(|p| p.to_string_lossy().into_owned())
        .join(":")
}

/// Says loudly that a suite cannot run here, or fails in CI (where it must run).
pub(crate) fn missing(suite: &str, what: &str, install: &str) -> Result<()> {
    if in_ci() {
        bail!("{suite}: {what} is missing in CI; `.ci/run` installs it ({install})");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !! {suite} SKIPPED: {what} is missing on this machine.\n\
         !! Install it with: {install}\n\
         !! (CI runs this suite; `.ci/run` installs it.)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    Ok(())
}

/// The debug server the suites start as a child process (built once for both).
pub(crate) fn server_binary() -> Result<PathBuf> {
    run(&cargo(), &["build", "-p", "gridlink-server"])?;
    Ok(target_dir().join("debug").join("gridlink-server"))
}

/// The Python suite (pytest from the venv `.ci/run` makes, or any Python with pytest).
pub(crate) fn python_suite(bindings: &Path, server: &Path) -> Result<()> {
    let venv = target_dir().join("python-venv").join("bin").join("python");
    let python = if venv.exists() {
        venv.to_string_lossy().into_owned()
    } else {
        "python3".to_owned()
    };
    let has_pytest = Command::new(&python)
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pytest {
        return missing(
            "Python binding suite",
            "pytest",
            "python3 -m venv target/python-venv && target/python-venv/bin/pip install pytest",
        );
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "ffi/tests/python",
        ])
        .env("GRIDLINK_BINDINGS", bindings.join("python"))
        .env("GRIDLINK_SERVER_BIN", server)
        .current_dir(root())
        .status()
        .context("starting pytest")?;
    if !status.success() {
        bail!("the Python binding suite failed ({status})");
    }
    Ok(())
}

/// The Kotlin compiler from the npm package `kotlin-compiler` (in `target/kotlin`, where
/// `.ci/run` installs it) or on the PATH.
fn kotlin_home() -> Option<PathBuf> {
    let npm = target_dir()
        .join("kotlin")
        .join("node_modules")
        .join("kotlin-compiler");
    if npm.join("bin").join("kotlinc").exists() {
        return Some(npm);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v kotlinc"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
    let real = std::fs::canonicalize(path).ok()?;
    // The layout of the official zip and the npm package: bin/kotlinc beside lib/*.jar.
    let home = real.parent()?.parent()?.to_path_buf();
    home.join("lib/kotlin-stdlib.jar").exists().then_some(home)
}

/// The Kotlin suite: compiles the generated Kotlin with the scenario and runs it on the JVM
/// with JNA against the host library.
pub(crate) fn kotlin_suite(bindings: &Path, server: &Path) -> Result<()> {
    const INSTALL: &str =
        "npm install --prefix target/kotlin kotlin-compiler && apt-get install libjna-java";
    let Some(home) = kotlin_home() else {
        return missing("Kotlin binding suite", "kotlinc", INSTALL);
    };
    let jna = PathBuf::from(JNA);
    if !jna.exists() {
        return missing(
            "Kotlin binding suite",
            "JNA (/usr/share/java/jna.jar)",
            INSTALL,
        );
    }
    let classes = target_dir().join("kotlin-test");
    if classes.exists() {
        std::fs::remove_dir_all(&classes)?;
    }
    let generated = bindings.join("kotlin/cn/gridlink/ffi/gridlink.kt");
    let test = root().join("ffi/tests/kotlin/Scenario.kt");
    let kotlinc = home.join("bin").join("kotlinc");
    run(
        &kotlinc.to_string_lossy(),
        &[
            "-nowarn",
            "-classpath",
            &jna.to_string_lossy(),
            "-d",
            &classes.to_string_lossy(),
            &generated.to_string_lossy(),
            &test.to_string_lossy(),
        ],
    )?;
    let classpath = jvm_classpath(&classes, &home);
    let status = Command::new("java")
        .arg(format!(
            "-Djna.library.path={}",
            bindings.join("kotlin").display()
        ))
        .args(["-cp", &classpath, "cn.gridlink.ffi.test.ScenarioKt"])
        .env("GRIDLINK_SERVER_BIN", server)
        .env("GRIDLINK_ROOT", root())
        .current_dir(root())
        .status()
        .context("starting java")?;
    if !status.success() {
        bail!("the Kotlin binding suite failed ({status})");
    }
    Ok(())
}

/// `cargo xtask android`: the library for each Android ABI with cargo-ndk, copied into the
/// Gradle module with the generated Kotlin. Needs the NDK (ANDROID_NDK_HOME) and cargo-ndk.
pub(crate) fn android() -> Result<()> {
    if std::env::var_os("ANDROID_NDK_HOME").is_none() {
        bail!(
            "the Android NDK is not installed here: set ANDROID_NDK_HOME, then\n  \
             rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android\n  \
             cargo install cargo-ndk\n  cargo xtask android"
        );
    }
    let bindings = bindings(&["--release".to_owned()])?;
    let jni = root().join("android/gridlink-android/src/main/jniLibs");
    run(
        &cargo(),
        &[
            "ndk",
            "-t",
            "arm64-v8a",
            "-t",
            "armeabi-v7a",
            "-t",
            "x86_64",
            "-o",
            &jni.to_string_lossy(),
            "build",
            "--release",
            "-p",
            "gridlink-ffi",
        ],
    )?;
    let kotlin = root().join("android/gridlink-android/src/main/kotlin/cn/gridlink/ffi");
    std::fs::create_dir_all(&kotlin)?;
    std::fs::copy(
        bindings.join("kotlin/cn/gridlink/ffi/gridlink.kt"),
        kotlin.join("gridlink.kt"),
    )?;
    eprintln!(
        "android: libraries in {}; now `cd android && ./gradlew assembleDebug`",
        jni.display()
    );
    Ok(())
}

/// `cargo xtask ios`: static libraries for the device and the simulators, wrapped in
/// `ios/GridLinkFFI.xcframework` with the generated Swift. Needs macOS with Xcode.
pub(crate) fn ios() -> Result<()> {
    if !cfg!(target_os = "macos") {
        bail!(
            "the iOS build needs macOS with Xcode:\n  \
             rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios\n  \
             cargo xtask ios"
        );
    }
    let bindings = bindings(&["--release".to_owned()])?;
    let targets = [
        "aarch64-apple-ios",
        "aarch64-apple-ios-sim",
        "x86_64-apple-ios",
    ];
    for target in targets {
        run(
            &cargo(),
            &[
                "rustc",
                "--release",
                "-p",
                "gridlink-ffi",
                "--lib",
                "--crate-type",
                "staticlib",
                "--target",
                target,
            ],
        )?;
    }
    let lib = |t: &str| target_dir().join(t).join("release/libgridlink_ffi.a");
    let sim = target_dir().join("ios-sim/libgridlink_ffi.a");
    std::fs::create_dir_all(sim.parent().context("simulator dir")?)?;
    run(
        "lipo",
        &[
            "-create",
            &lib("aarch64-apple-ios-sim").to_string_lossy(),
            &lib("x86_64-apple-ios").to_string_lossy(),
            "-output",
            &sim.to_string_lossy(),
        ],
    )?;
    let headers = target_dir().join("ios-headers");
    std::fs::create_dir_all(&headers)?;
    std::fs::copy(
        bindings.join("swift/gridlinkFFI.h"),
        headers.join("gridlinkFFI.h"),
    )?;
    std::fs::copy(
        bindings.join("swift/gridlinkFFI.modulemap"),
        headers.join("module.modulemap"),
    )?;
    let framework = root().join("ios/GridLinkFFI.xcframework");
    if framework.exists() {
        std::fs::remove_dir_all(&framework)?;
    }
    run(
        "xcodebuild",
        &[
            "-create-xcframework",
            "-library",
            &lib("aarch64-apple-ios").to_string_lossy(),
            "-headers",
            &headers.to_string_lossy(),
            "-library",
            &sim.to_string_lossy(),
            "-headers",
            &headers.to_string_lossy(),
            "-output",
            &framework.to_string_lossy(),
        ],
    )?;
    std::fs::copy(
        bindings.join("swift/gridlink.swift"),
        root().join("ios/Sources/GridLink/gridlink.swift"),
    )?;
    eprintln!(
        "ios: {} and Sources/GridLink/gridlink.swift are ready; open ios/App in Xcode",
        framework.display()
    );
    Ok(())
}

/// `cargo xtask bench ffi`: the screen call timed in Rust and from Python on the same phone
/// database (release library), and the size of the stripped release library.
pub(crate) fn bench_ffi(args: &[String]) -> Result<()> {
    let bindings = bindings(&["--release".to_owned()])?;
    let dir = target_dir().join("bench-ffi");
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut cmd = vec![
        "bench",
        "--quiet",
        "-p",
        "gridlink-ffi",
        "--bench",
        "ffi",
        "--",
        "--dir",
        &dir_arg,
    ];
    cmd.extend(args.iter().map(String::as_str));
    run(&cargo(), &cmd)?;
    let status = Command::new("python3")
        .arg(root().join("ffi/benches/list_cases.py"))
        .arg(&dir)
        .env("GRIDLINK_BINDINGS", bindings.join("python"))
        .status()
        .context("starting python3")?;
    if !status.success() {
        bail!("the Python half of the ffi benchmark failed ({status})");
    }
    // The same call from Kotlin on the JVM, as the Android app makes it (where kotlinc is).
    match (kotlin_home(), Path::new(JNA).exists()) {
        (Some(home), true) => {
            let classes = dir.join("kotlin-classes");
            let generated = bindings.join("kotlin/cn/gridlink/ffi/gridlink.kt");
            run_to_stderr(
                &home.join("bin/kotlinc").to_string_lossy(),
                &[
                    "-nowarn",
                    "-classpath",
                    JNA,
                    "-d",
                    &classes.to_string_lossy(),
                    &generated.to_string_lossy(),
                    &root().join("ffi/benches/ListCases.kt").to_string_lossy(),
                ],
            )?;
            let status = Command::new("java")
                .arg(format!(
                    "-Djna.library.path={}",
                    bindings.join("kotlin").display()
                ))
                .args([
                    "-cp",
                    &jvm_classpath(&classes, &home),
                    "cn.gridlink.ffi.bench.ListCasesKt",
                ])
                .arg(&dir)
                .status()
                .context("starting java")?;
            if !status.success() {
                bail!("the Kotlin half of the ffi benchmark failed ({status})");
            }
        }
        _ => eprintln!("bench ffi: kotlinc or JNA missing, kotlin_list_ms not measured"),
    }
    let stripped = dir.join("libgridlink_ffi.stripped");
    std::fs::copy(library_file("release"), &stripped)?;
    run("strip", &["--strip-all", &stripped.to_string_lossy()])?;
    let bytes = std::fs::metadata(&stripped)?.len();
    println!("{{\"bench\":\"ffi\",\"metric\":\"so_bytes\",\"value\":{bytes},\"unit\":\"bytes\"}}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
