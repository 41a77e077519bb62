//! The query language: what parses into what, and every refusal.

use super::*;

fn ok(q: &str) -> Query {
    parse(q).unwrap_or_else(|e| panic!("{q:?} parses: {e}"))
}

fn err(q: &str) -> String {
    match parse(q) {
        Ok(p) => panic!("{q:?} should be refused, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn word(t: &str) -> Term {
    Term {
        kind: TermKind::Word,
        text: t.into(),
    }
}

fn prefix(t: &str) -> Term {
    Term {
        kind: TermKind::Prefix,
        text: t.into(),
    }
}

fn phrase(t: &str) -> Term {
    Term {
        kind: TermKind::Phrase,
        text: t.into(),
    }
}

#[test]
fn words_prefixes_phrases_and_exclusions() {
    let q = ok(r#"deploy*  "release   train" -flaky -"do not merge" café"#);
    assert_eq!(
        q.terms,
        [prefix("deploy"), phrase("release train"), word("café")]
    );
    assert_eq!(q.excluded, [word("flaky"), phrase("do not merge")]);
    assert_eq!(q.filters, Filters::default());
}

#[test]
fn fts_syntax_is_just_text() {
    // Operators of the index's own language are words here: the backend
    // quotes every term.
    let q = ok("NEAR(a b) OR x AND NOT y ^umn^");
    let texts: Vec<&str> = q.terms.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        ["NEAR(a", "b)", "OR", "x", "AND", "NOT", "y", "^umn^"]
    );
    let q = ok("'; DROP TABLE docs; --");
    assert_eq!(q.terms, [word("DROP"), word("TABLE"), word("docs;")]);
    // Tokens that are not filters stay words.
    let q = ok("https://example.com/x 12:30 Re: a:/b");
    let texts: Vec<&str> = q.terms.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["https://example.com/x", "12:30", "Re:", "a:/b"]);
    // A - alone or doubled is not an exclusion.
    let q = ok("a - b --c");
    assert_eq!(q.terms, [word("a"), word("b"), word("--c")]);
    assert!(q.excluded.is_empty());
    // Symbols with no letters are dropped when something else remains.
    assert_eq!(ok("^ deploy :").terms, [word("deploy")]);
}

#[test]
fn filters() {
    let q = ok(
        "x in:#general in:random in:@bob from:@ada from:cy mentions:@dee \
                before:2026-02-01 after:2026-01-01 on:2026-01-15 has:file has:link \
                has:reaction is:thread",
    );
    let f = &q.filters;
    assert_eq!(f.in_channels, ["general", "random"]);
    assert_eq!(f.in_dms, ["bob"]);
    assert_eq!(f.from, ["ada", "cy"]);
    assert_eq!(f.mentions, ["dee"]);
    assert_eq!(
        f.before,
        Some(Date {
            year: 2026,
            month: 2,
            day: 1
        })
    );
    assert!(f.after.is_some() && f.on.is_some());
    assert!(f.has_file && f.has_link && f.has_reaction && f.is_thread);
    assert_eq!(q.terms, [word("x")]);
    // Keys are case-insensitive.
    assert!(ok("x HAS:FILE").filters.has_file);
}

#[test]
fn refusals_name_the_problem() {
    for (q, needle) in [
        ("", "empty"),
        ("   \t ", "empty"),
        ("\u{0}", "empty"),
        ("^", "nothing to search for"),
        (":", "nothing to search for"),
        ("\"\"", "nothing to search for"),
        ("( )", "nothing to search for"),
        ("-secret", "exclusions alone"),
        ("-a -\"b c\"", "exclusions alone"),
        ("from:@bob", "filters alone"),
        ("has:file is:thread", "filters alone"),
        ("\"open", "unbalanced"),
        ("a \"b\" \"", "unbalanced"),
        ("*", "a * ends a word"),
        ("a **", "a * ends a word"),
        ("x**", "a * ends a word"),
        ("a*", "at least 2"),
        ("foo:bar x", "unknown filter \"foo:\""),
        ("x has:nothing", "has: takes"),
        ("x is:open", "is: takes"),
        ("x before:yesterday", "before: expects a date"),
        ("x on:2026-02-30", "on: expects a date"),
        ("x from:@", "needs a name"),
        ("x -from:@bob", "cannot be excluded"),
    ] {
        let e = err(q);
        assert!(e.contains(needle), "{q:?}: {e}");
    }
    let long = "a".repeat(MAX_QUERY_CHARS + 1);
    assert!(err(&long).contains("at most 1000 characters"));
    let ten_kb = "word ".repeat(2048);
    assert!(err(&ten_kb).contains("at most 1000 characters"));
    let many = (0..=MAX_TERMS).map(|i| format!("w{i}")).collect::<Vec<_>>();
    assert!(err(&many.join(" ")).contains("at most 16 words"));
    let filters = (0..=MAX_FILTERS)
        .map(|i| format!("from:@u{i}"))
        .collect::<Vec<_>>();
    assert!(err(&format!("x {}", filters.join(" "))).contains("filter values"));
    // Exactly at the limits is fine.
    ok(&"a".repeat(MAX_QUERY_CHARS));
    ok("ab*");
}

#[test]
fn dates_and_time_zones() {
    let d = Date::parse("2026-11-28").expect("date");
    assert_eq!(d.start_ms(0), 1_795_824_000_000);
    assert_eq!(Date::parse("1970-01-01").map(|d| d.days()), Some(0));
    assert_eq!(Date::parse("2000-03-01").map(|d| d.days()), Some(11_017));
    assert!(Date::parse("2024-02-29").is_some());
    for bad in [
        "2023-02-29",
        "2026-13-01",
        "2026-1-01",
        "26-01-01",
        "2026-01-001",
        "１９７０-01-01",
    ] {
        assert_eq!(Date::parse(bad), None, "{bad}");
    }
    // A day in Tokyo (+09:00) starts 9 hours before the UTC day.
    assert_eq!(d.start_ms(540), 1_795_824_000_000 - 9 * 3_600_000);
    assert_eq!(parse_tz(None, None), Ok(Zone::UTC));
    assert_eq!(parse_tz(Some("UTC"), None), Ok(Zone::UTC));
    assert_eq!(parse_tz(Some("+09:00"), None), Ok(Zone::Fixed(540)));
    assert_eq!(parse_tz(Some("-0530"), None), Ok(Zone::Fixed(-330)));
    assert_eq!(parse_tz(None, Some("-300")), Ok(Zone::Fixed(-300)));
    assert_eq!(
        parse_tz(Some("Europe/Paris"), None),
        Ok(Zone::Named(chrono_tz::Tz::Europe__Paris))
    );
    for (tz, off) in [
        (Some("Mars/Olympus_Mons"), None),
        (Some(""), None),
        (Some("Europe/Paris"), Some("60")),
        (Some("+25:00"), None),
        (Some("+09:60"), None),
        (Some("9"), None),
        (None, Some("+60")),
        (None, Some("841")),
        (None, Some("")),
        (Some("UTC"), Some("0")),
    ] {
        assert!(parse_tz(tz, off).is_err(), "{tz:?} {off:?}");
    }
    // before: ends where the day begins; after: starts after the day ends;
    // on: is the day.
    let f = ok("x before:2026-11-28 after:2026-11-26").filters;
    let day = 86_400_000;
    assert_eq!(
        f.time_range(Zone::UTC),
        (Some(1_795_824_000_000 - day), Some(1_795_824_000_000))
    );
    let f = ok("x on:2026-11-28").filters;
    assert_eq!(
        f.time_range(Zone::Fixed(60)),
        (
            Some(1_795_824_000_000 - 3_600_000),
            Some(1_795_824_000_000 - 3_600_000 + day)
        )
    );
}

#[test]
fn unspaced_scripts_become_bigrams() {
    assert_eq!(segment("plain words only"), "");
    assert_eq!(segment("東京タワー"), "東京 京タ タワ ワー ー");
    assert_eq!(segment("東"), "東");
    assert_eq!(segment("see 東京tower"), "see 東京 京 tower");
    // The query side: a run ending the term keeps only its bigrams; one
    // character at the end is a prefix.
    assert_eq!(segment_query("東京"), ("東京".into(), false));
    assert_eq!(segment_query("タワー"), ("タワ ワー".into(), false));
    assert_eq!(segment_query("京"), ("京".into(), true));
    assert_eq!(segment_query("東京tower"), ("東京 京 tower".into(), false));
    assert!(word("東京").is_unspaced());
    assert!(word("서울에서").is_unspaced());
    assert!(!word("café").is_unspaced());
}

#[test]
fn links() {
    assert!(has_link("see https://example.com"));
    assert!(has_link("HTTP://X"));
    assert!(has_link("www.example.com"));
    assert!(!has_link("no link here: mailto or ftp"));
}

#[test]
fn named_zones_have_daylight_saving_days() {
    let paris = parse_tz(Some("Europe/Paris"), None).expect("a zone");
    let hour = 3_600_000;
    // 2026-03-29: clocks go from 02:00 to 03:00; the day starts at
    // 00:00+01:00 and lasts 23 hours.
    let f = ok("x on:2026-03-29").filters;
    assert_eq!(
        f.time_range(paris),
        (Some(1_774_738_800_000), Some(1_774_738_800_000 + 23 * hour))
    );
    // 2026-10-25: clocks go back from 03:00 to 02:00; 25 hours, starting
    // at 00:00+02:00.
    let f = ok("x on:2026-10-25").filters;
    assert_eq!(
        f.time_range(paris),
        (Some(1_792_879_200_000), Some(1_792_879_200_000 + 25 * hour))
    );
    // after: starts where the next local day starts (summer time now).
    let f = ok("x after:2026-03-29 before:2026-03-31").filters;
    assert_eq!(
        f.time_range(paris),
        (Some(1_774_821_600_000), Some(1_774_821_600_000 + 24 * hour))
    );
    // The same day at the winter offset as a fixed zone differs by an hour.
    assert_eq!(
        ok("x on:2026-10-26").filters.time_range(Zone::Fixed(60)),
        ok("x on:2026-10-26").filters.time_range(paris)
    );
    // Santiago skips midnight on 2026-09-06 (00:00 -> 01:00): the day
    // starts at the first local time that exists, 01:00-03:00.
    let santiago = parse_tz(Some("America/Santiago"), None).expect("a zone");
    let d = Date::parse("2026-09-06").expect("a date");
    assert_eq!(santiago.day_start_ms(d), 1_788_667_200_000);
    // Year and month ends roll over.
    assert_eq!(
        Date::parse("2026-12-31").map(Date::next),
        Date::parse("2027-01-01")
    );
    assert_eq!(
        Date::parse("2024-02-28").map(Date::next),
        Date::parse("2024-02-29")
    );
}
