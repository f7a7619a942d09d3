//! The documentation as shipped: every relative link and `#anchor` of the README and of `docs/` leads to
//! a file and a heading that exist, and the Debian package installs every page where the README's links
//! find it.
//!
//! Links are found without a Markdown parser: `[text](target)` outside fenced code blocks and inline
//! code, as the pages write them. Anchors follow GitHub's rule: the heading in lower case, spaces to
//! `-`, every other character but letters, digits, `-` and `_` dropped, and `-1`, `-2`, ... after
//! repeated headings. The same check written in Python over the same files found no problem, and found
//! each link broken on purpose in a copy (a missing file, a missing anchor in another file and in the
//! same file); `the_link_check_reports_a_missing_file_and_missing_anchors` keeps that proof here.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every `docs/*.md` under `root`, relative to it.
fn markdown_pages(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap_or_else(|e| panic!("{}/docs: {e}", root.display()))
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| Path::new(name).extension().is_some_and(|ext| ext == "md"))
        .map(|name| Path::new("docs").join(name))
        .collect();
    docs.sort();
    let mut pages = vec![PathBuf::from("README.md")];
    pages.extend(docs);
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of `text` outside fenced code blocks, with their line numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// GitHub's anchor of a heading's text.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of every heading of a Markdown text.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let level = line.len() - line.trim_start_matches('#').len();
        let Some(heading) = line[level..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&level) {
            continue;
        }
        let anchor = github_anchor(heading);
        // GitHub numbers repeated headings: `x`, `x-1`, `x-2`.
        let mut numbered = anchor.clone();
        let mut repeat = 0;
        while anchors.contains(&numbered) {
            repeat += 1;
            numbered = format!("{anchor}-{repeat}");
        }
        anchors.insert(numbered);
    }
    anchors
}

/// A line without its inline code spans (`` `[x](y)` `` is code, not a link).
fn without_code_spans(line: &str) -> String {
    let mut code = false;
    line.chars()
        .filter(|&c| {
            if c == '`' {
                code = !code;
                false
            } else {
                !code
            }
        })
        .collect()
}

/// Every `[text](target)` of a Markdown text outside code: (line number, target).
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let mut from = 0;
        while let Some(at) = line[from..].find("](").map(|at| from + at) {
            let start = at + 2;
            let Some(end) = line[start..].find(')').map(|end| start + end) else {
                break;
            };
            if line[..at].contains('[') {
                // A title after the target (`(path "title")`) and angle brackets are not the path.
                let target = line[start..end].split_whitespace().next().unwrap_or("");
                targets.push((number, target.trim_matches(['<', '>']).to_string()));
            }
            from = start;
        }
    }
    targets
}

/// `relative` resolved against the directory of `page` (both relative to the repository), or `None`
/// when it leaves the repository.
fn resolve(page: &Path, relative: &str) -> Option<PathBuf> {
    let mut resolved = PathBuf::new();
    for component in page
        .parent()
        .unwrap_or(Path::new(""))
        .join(relative)
        .components()
    {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::ParentDir => {
                if !resolved.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(resolved)
}

/// Every relative link of `pages` (under `root`) whose file or anchor does not exist, one line each;
/// and how many relative links were checked.
fn broken_links(root: &Path, pages: &[PathBuf]) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages {
        for (line, target) in link_targets(&read(&root.join(page))) {
            if ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme))
            {
                continue;
            }
            checked += 1;
            let at = format!("{}:{line}: ({target})", page.display());
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                match resolve(page, path) {
                    Some(file) => file,
                    None => {
                        problems.push(format!("{at}: leaves the repository"));
                        continue;
                    }
                }
            };
            if !root.join(&file).exists() {
                problems.push(format!("{at}: no file {}", file.display()));
                continue;
            }
            let Some(anchor) = anchor else {
                continue;
            };
            if file.extension().is_none_or(|ext| ext != "md") {
                problems.push(format!(
                    "{at}: an anchor into {}, which has no headings",
                    file.display()
                ));
            } else if !anchors(&read(&root.join(&file))).contains(anchor) {
                problems.push(format!(
                    "{at}: no heading of {} has the anchor #{anchor}",
                    file.display()
                ));
            }
        }
    }
    (problems, checked)
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = repo_root();
    let pages = markdown_pages(root);
    let (problems, checked) = broken_links(root, &pages);
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= pages.len(),
        "only {checked} relative links found: is the link search broken?"
    );
    // The README is the way in: it links every page of docs/.
    let linked: BTreeSet<PathBuf> = link_targets(&read(&root.join("README.md")))
        .into_iter()
        .filter_map(|(_, target)| {
            let path = target.split('#').next().unwrap_or("");
            resolve(Path::new("README.md"), path)
        })
        .collect();
    for page in &pages[1..] {
        assert!(linked.contains(page), "the README links {}", page.display());
    }
}

/// The check itself on pages broken on purpose: it must see each problem, so a broken link in the real
/// pages cannot pass unnoticed.
#[test]
fn the_link_check_reports_a_missing_file_and_missing_anchors() {
    let root =
        std::env::temp_dir().join(format!("kraken_exporter-docs-check-{}", std::process::id()));
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(
        root.join("README.md"),
        "# Title\n\nSee [the guide](docs/guide.md#set-it-up-step-1-config), [gone](docs/gone.md), \
         [a typo](docs/guide.md#set-it-upp), [here](#title) and [there](#nowhere).\n\n\
         ```sh\necho [not a link](docs/gone.md)\n```\n\n`[code](docs/gone.md)` and <https://example.com>.\n",
    )
    .unwrap();
    std::fs::write(
        root.join("docs/guide.md"),
        "# Guide\n\n## Set it up: step 1, `config`\n\nBack to [the README](../README.md#title) or \
         [outside](../../elsewhere.md); [Kraken](https://www.kraken.com).\n\n## Set it up: step 1, `config`\n\n\
         [The second one](#set-it-up-step-1-config-1).\n",
    )
    .unwrap();
    let pages = markdown_pages(&root);
    let (problems, checked) = broken_links(&root, &pages);
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(checked, 8, "{problems:#?}");
    let expected = [
        "README.md:3: (docs/gone.md): no file docs/gone.md",
        "README.md:3: (docs/guide.md#set-it-upp): no heading of docs/guide.md has the anchor #set-it-upp",
        "README.md:3: (#nowhere): no heading of README.md has the anchor #nowhere",
        "docs/guide.md:5: (../../elsewhere.md): leaves the repository",
    ];
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    for problem in expected {
        assert!(
            problems.iter().any(|p| p == problem),
            "{problem} in {problems:#?}"
        );
    }
}

#[test]
fn github_anchors_drop_punctuation_and_keep_dashes_and_underscores() {
    assert_eq!(
        github_anchor("Margin, Earn and keys with a 2FA password"),
        "margin-earn-and-keys-with-a-2fa-password"
    );
    assert_eq!(
        github_anchor("Docker Compose: exporter, Prometheus, Alertmanager, Grafana"),
        "docker-compose-exporter-prometheus-alertmanager-grafana"
    );
    assert_eq!(
        github_anchor("Overrides of the file's keys"),
        "overrides-of-the-files-keys"
    );
    assert_eq!(github_anchor("KrakenEndpointDown"), "krakenendpointdown");
    assert_eq!(
        github_anchor("`max_backoff` and stale-after"),
        "max_backoff-and-stale-after"
    );
}

/// `cargo deb` installs the README and every page of docs/ (and the status page picture) under
/// /usr/share/doc/kraken-exporter/, the pages in docs/ so the README's links work there too; and every
/// asset the package names exists, so the package builds.
#[test]
fn the_debian_package_ships_every_page_and_every_asset_exists() {
    let root = repo_root();
    let manifest = read(&root.join("Cargo.toml"));
    let section = manifest
        .split_once("[package.metadata.deb]")
        .expect("Cargo.toml has a [package.metadata.deb] section")
        .1;
    let list = section
        .split_once("assets = [")
        .expect("the deb section has an assets list")
        .1;
    let list = &list[..list
        .find("\n]")
        .expect("the assets list ends with a ] line")];
    // Each asset is `["source", "destination", "mode"]` on a line of its own.
    let assets: Vec<(String, String)> = list
        .lines()
        .filter_map(|line| {
            let mut quoted = line.split('"').skip(1).step_by(2);
            Some((quoted.next()?.to_string(), quoted.next()?.to_string()))
        })
        .collect();
    assert!(!assets.is_empty(), "{list}");
    for (source, _) in &assets {
        // Built before packaging.
        if source.starts_with("target/") {
            continue;
        }
        assert!(root.join(source).exists(), "deb asset {source} exists");
    }
    let mut shipped: Vec<&str> = vec!["README.md", "docs/status-page.png"];
    let pages = markdown_pages(root);
    shipped.extend(pages[1..].iter().map(|page| page.to_str().unwrap()));
    for file in shipped {
        let destination = format!("usr/share/doc/kraken-exporter/{file}");
        assert!(
            assets
                .iter()
                .any(|(source, to)| source == file && *to == destination),
            "Cargo.toml's deb assets install {file} as {destination}"
        );
    }
}
