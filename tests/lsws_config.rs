//! The LiteSpeed snippets in `lsws-config/` agree with the binary's defaults
//! and with `install.sh`, and `install.sh` renders, applies and removes them
//! correctly on a LiteSpeed tree (a stand-in directory with the stock layout
//! and a recording `lswsctrl`, since LiteSpeed itself cannot be installed here).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use videofeed::config::{Config, ENV_VARS};

use crate::util::{TestDir, TestResult, bin};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One `name value {` block of OpenLiteSpeed plain-text config: key → values (repeatable keys kept).
fn ols_block(text: &str, opener: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if !inside {
            inside = line.starts_with(opener) && line.ends_with('{');
            continue;
        }
        if line == "}" {
            break;
        }
        let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        out.entry(k.to_owned()).or_default().push(v.trim().to_owned());
    }
    assert!(!out.is_empty(), "no `{opener} {{` block found");
    out
}

fn one<'a>(block: &'a HashMap<String, Vec<String>>, key: &str) -> &'a str {
    match block.get(key).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{key}: expected one value, got {other:?}"),
    }
}

fn env_map(values: &[String]) -> HashMap<String, String> {
    values.iter().map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).unwrap()).collect()
}

/// `<tag>value</tag>` pairs inside the first `<element>…</element>` of the XML file.
fn xml_element(text: &str, element: &str) -> HashMap<String, Vec<String>> {
    // Comments out first: they mention element names.
    let mut plain = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("<!--") {
        plain.push_str(&rest[..open]);
        rest = rest[open..].split_once("-->").map_or("", |(_, after)| after);
    }
    plain.push_str(rest);
    let text = plain.as_str();
    let start = text.find(&format!("<{element}>")).unwrap_or_else(|| panic!("no <{element}>"));
    let end = text[start..].find(&format!("</{element}>")).unwrap() + start;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for line in text[start..end].lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix('<') {
            if let Some((tag, rest)) = rest.split_once('>') {
                if let Some(value) = rest.strip_suffix(&format!("</{tag}>")) {
                    out.entry(tag.to_owned()).or_default().push(value.to_owned());
                }
            }
        }
    }
    out
}

/// The defaults install.sh uses when run as root (the deployment the snippets describe).
fn install_sh_root_defaults() -> HashMap<String, String> {
    let text = std::fs::read_to_string(repo("install.sh")).unwrap();
    let branch = text.split("if [ \"$(id -u)\" = 0 ]; then").nth(1).unwrap().split("else").next().unwrap();
    let mut out: HashMap<String, String> =
        branch.lines().filter_map(|l| l.trim().split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    // The root branch names the default database `default_db` (each database has its
    // own run directory); `db` is that unless --db says otherwise.
    if let Some(d) = out.get("default_db").cloned() {
        out.insert("db".to_owned(), d);
    }
    for line in text.lines() {
        for key in ["workers", "lsws_log", "lsws_root"] {
            if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                out.insert(key.to_owned(), v.to_owned());
            }
        }
    }
    out
}

#[test]
fn extprocessor_matches_binary_defaults_and_install_sh() -> TestResult {
    let text = std::fs::read_to_string(repo("lsws-config/extprocessor.conf"))?;
    let ext = ols_block(&text, "extprocessor videofeed");
    let defaults = Config::default();
    let install = install_sh_root_defaults();

    assert_eq!(one(&ext, "type"), "fcgi");
    assert_eq!(one(&ext, "instances"), "1");
    assert_eq!(one(&ext, "persistConn"), "1");
    assert_eq!(one(&ext, "runOnStartUp"), "1", "stated explicitly: the default is detached mode");
    assert!(one(&ext, "initTimeout").parse::<u32>()? >= 10);

    let env = env_map(&ext["env"]);
    // The snippet's worker count is the worked example of lsws-config/README.md (an
    // 8-core box: 2 per CPU); install.sh renders the box's own (tested below).
    assert_eq!(one(&ext, "maxConns"), "16", "maxConns = 2 x 8 cores, the README's example");
    assert_eq!(env["LSAPI_CHILDREN"], "16", "LSAPI_CHILDREN = maxConns");
    assert!(install["workers"].starts_with("\"\""), "install.sh computes its default from the CPU count");
    let _ = defaults;

    for name in env.keys() {
        assert!(ENV_VARS.contains(&name.as_str()) || name.starts_with("LS_"), "{name} is not read by videofeed");
    }
    let db = &env["VIDEOFEED_DB"];
    assert!(db.starts_with('/'), "VIDEOFEED_DB must be absolute");
    assert_eq!(db, &install["db"], "VIDEOFEED_DB = install.sh's database path");
    assert_eq!(env["LS_STDERR_LOG"], install["lsws_log"], "stderr log = install.sh's --lsws-log default");
    assert!(["error", "warn", "info", "debug", "trace"].contains(&env["VIDEOFEED_LOG"].as_str()));

    assert_eq!(
        one(&ext, "path"),
        format!("{}/bin/videofeed serve", install["prefix"]),
        "path = install.sh's binary + serve"
    );
    let address = one(&ext, "address");
    let socket = address.strip_prefix("uds:/").ok_or("address must be uds://")?;
    assert!(socket.starts_with('/') && socket.len() < 90, "short absolute socket path: {socket}");
    assert!(socket.ends_with("videofeed.sock"), "unique per app: {socket}");
    // The binary really has the `serve` subcommand the path names.
    let out = Command::new(bin()).args(["serve", "--help"]).output()?;
    assert!(out.status.success());
    Ok(())
}

#[test]
fn context_cache_and_vhost_snippets_fit_the_app() -> TestResult {
    let ext = ols_block(&std::fs::read_to_string(repo("lsws-config/extprocessor.conf"))?, "extprocessor videofeed");
    let ctx = ols_block(&std::fs::read_to_string(repo("lsws-config/context.conf"))?, "context /feed");
    assert_eq!(one(&ctx, "type"), "fcgi");
    assert_eq!(one(&ctx, "handler"), "videofeed");
    assert!(ext.contains_key("type"));
    let limits = ols_block(&std::fs::read_to_string(repo("lsws-config/cgirlimit.conf"))?, "CGIRLimit");
    assert!(one(&limits, "procHardLimit").parse::<u32>()? >= 400, "the stock CGIRLimit block");
    let cache = ols_block(&std::fs::read_to_string(repo("lsws-config/cache.conf"))?, "module cache");
    assert_eq!(one(&cache, "enableCache"), "0", "only answers that opt in are cached");
    assert_eq!(one(&cache, "qsCache"), "1", "every /feed URL has a query string");
    assert!(videofeed::http::response::LSCACHE_CONTROL.contains("max-age="), "OLS needs max-age to store");
    Ok(())
}

#[test]
fn enterprise_xml_says_the_same_as_the_plain_text() -> TestResult {
    let ext = ols_block(&std::fs::read_to_string(repo("lsws-config/extprocessor.conf"))?, "extprocessor videofeed");
    let xml_text = std::fs::read_to_string(repo("lsws-config/lsws-enterprise.xml"))?;
    let xml = xml_element(&xml_text, "extProcessor");
    assert_eq!(xml["name"], vec!["videofeed".to_owned()]);
    for (key, values) in &ext {
        let got = xml.get(key).unwrap_or_else(|| panic!("XML lacks <{key}>"));
        assert_eq!(got, values, "<{key}> differs from extprocessor.conf");
    }
    let ctx = xml_element(&xml_text, "context");
    assert_eq!(ctx["uri"], vec!["/feed".to_owned()]);
    assert_eq!(ctx["handler"], vec!["videofeed".to_owned()]);
    assert_eq!(ctx["type"], vec!["fcgi".to_owned()]);
    Ok(())
}

/// A stand-in LiteSpeed install: the stock conf layout and an `lswsctrl` that records its calls.
fn fake_lsws(dir: &TestDir) -> PathBuf {
    let root = dir.path("lsws");
    std::fs::create_dir_all(root.join("conf/vhosts/Example")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(
        root.join("conf/httpd_config.conf"),
        "serverName test\nuser nobody\ngroup nogroup\nvirtualhost Example {\n  vhRoot Example/\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("conf/vhosts/Example/vhconf.conf"), "docRoot $VH_ROOT/html/\n").unwrap();
    let ctl = root.join("bin/lswsctrl");
    std::fs::write(&ctl, format!("#!/bin/sh\necho \"$@\" >> {}/calls.log\n", root.display())).unwrap();
    std::fs::set_permissions(&ctl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    root
}

fn install_sh(args: &[&str]) -> (i32, String) {
    let out = Command::new("bash").arg(repo("install.sh")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn install_sh_renders_shows_applies_restarts_and_uninstalls() -> TestResult {
    let dir = TestDir::new("installsh");
    let lsws = fake_lsws(&dir);
    let server_conf = lsws.join("conf/httpd_config.conf");
    let vhost_conf = lsws.join("conf/vhosts/Example/vhconf.conf");
    let original = std::fs::read_to_string(&server_conf)?;
    let prefix = dir.path("prefix");
    let db = dir.path("data/videos.db");
    let log = dir.path("log/videofeed.log");
    let (binary, run_dir) = (bin(), dir.path("run"));
    let env_file = dir.path("videofeed.env");
    let common = [
        "--binary",
        binary.to_str().unwrap(),
        "--prefix",
        prefix.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--workers",
        "6",
        "--run-dir",
        run_dir.to_str().unwrap(),
        "--lsws-root",
        lsws.to_str().unwrap(),
        "--lsws-log",
        log.to_str().unwrap(),
        "--env-file",
        env_file.to_str().unwrap(),
        "--no-start",
    ];

    // Without --apply: the change is shown, nothing is written, installed or started (issue 30).
    let (code, text) = install_sh(&common);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("would change as follows") && text.contains("+  maxConns                6"), "{text}");
    assert!(text.contains("no CGIRLimit block") && text.contains("+CGIRLimit"), "{text}");
    assert!(text.contains("preview only"), "{text}");
    assert_eq!(std::fs::read_to_string(&server_conf)?, original);
    assert!(!db.exists() && !prefix.join("bin/videofeed").exists(), "the preview installed something: {text}");
    assert!(!run_dir.exists(), "the preview made a run directory");

    // --apply writes one managed block with the chosen paths and the settings file's
    // variables as `env` lines (issue 30); --restart calls lswsctrl.
    std::fs::write(&env_file, "# settings\nVIDEOFEED_ADMIN_TOKEN=lsws-secret\nVIDEOFEED_DB=/ignored.db\n")?;
    let mut args = common.to_vec();
    args.extend(["--apply", "--restart"]);
    let (code, text) = install_sh(&args);
    assert_eq!(code, 0, "{text}");
    let conf = std::fs::read_to_string(&server_conf)?;
    let ext = ols_block(&conf, "extprocessor videofeed");
    assert_eq!(conf.matches("CGIRLimit").count(), 1, "the stock CGIRLimit block was added once: {conf}");
    assert_eq!(one(&ext, "path"), format!("{}/bin/videofeed serve", prefix.display()));
    assert_eq!(one(&ext, "maxConns"), "6");
    let env = env_map(&ext["env"]);
    assert_eq!(env["LSAPI_CHILDREN"], "6");
    assert_eq!(env["VIDEOFEED_DB"], db.display().to_string());
    assert_eq!(env["LS_STDERR_LOG"], log.display().to_string());
    assert_eq!(env["VIDEOFEED_ADMIN_TOKEN"], "lsws-secret", "the settings file's variable is rendered");
    assert!(std::fs::read_to_string(vhost_conf.clone())?.contains("context /feed {"));
    assert_eq!(std::fs::read_to_string(lsws.join("calls.log"))?.trim(), "restart");
    assert!(prefix.join("bin/videofeed").exists());
    assert!(db.exists(), "the database is created");

    // Without --workers, install.sh renders the binary's own default for this box.
    let without: Vec<&str> = common.iter().copied().filter(|a| *a != "--workers" && *a != "6").collect();
    let (code, text) = install_sh(&without);
    assert_eq!(code, 0, "{text}");
    let expected = format!("maxConns                {}", Config::default().workers);
    assert!(text.contains(&expected), "{expected} not in {text}");

    // Idempotent: a second run changes nothing and keeps one block.
    let (code, text) = install_sh(&args);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("already up to date"), "{text}");
    assert_eq!(std::fs::read_to_string(&server_conf)?.matches("extprocessor videofeed").count(), 1);

    // --uninstall removes the blocks and the binary, never the database.
    let mut args = common.to_vec();
    args.push("--uninstall");
    let (code, text) = install_sh(&args);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read_to_string(&server_conf)?, original);
    assert!(!std::fs::read_to_string(&vhost_conf)?.contains("videofeed"));
    assert!(!prefix.join("bin/videofeed").exists());
    assert!(db.exists(), "never deletes a database");
    Ok(())
}

#[test]
fn install_sh_refuses_to_fight_a_hand_written_extprocessor() -> TestResult {
    let dir = TestDir::new("installhand");
    let lsws = fake_lsws(&dir);
    let conf = lsws.join("conf/httpd_config.conf");
    let mut text = std::fs::read_to_string(&conf)?;
    text.push_str("extprocessor videofeed {\n  type fcgi\n}\n");
    std::fs::write(&conf, &text)?;
    let (code, out) = install_sh(&[
        "--binary",
        bin().to_str().unwrap(),
        "--prefix",
        dir.path("p").to_str().unwrap(),
        "--db",
        dir.path("v.db").to_str().unwrap(),
        "--lsws-root",
        lsws.to_str().unwrap(),
        "--env-file",
        dir.path("v.env").to_str().unwrap(),
        "--no-start",
        "--apply",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("outside install.sh's block"), "{out}");
    assert_eq!(std::fs::read_to_string(&conf)?, text);
    Ok(())
}
