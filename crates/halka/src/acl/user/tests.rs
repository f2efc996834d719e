use super::*;
use bytes::Bytes;

fn user(rules: &str) -> User {
    let mut u = User::new();
    for r in rules.split_whitespace() {
        u.apply(r.as_bytes()).unwrap();
    }
    u
}

fn check(u: &User, command: &str) -> Result<(), Denied> {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap().to_ascii_uppercase();
    let args: Vec<Bytes> = words.map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
    Compiled::new(u.clone()).check(&name, &args)
}

#[test]
fn a_new_user_is_off_and_may_run_nothing() {
    let u = User::new();
    assert!(!u.enabled);
    assert_eq!(check(&u, "PING"), Err(Denied::Command));
}

#[test]
fn later_rules_override_earlier_ones() {
    let u = user("on +@all -flushdb ~*");
    assert_eq!(check(&u, "FLUSHDB"), Err(Denied::Command));
    assert_eq!(check(&u, "GET k"), Ok(()));
}

#[test]
fn the_read_category_allows_get_and_not_set() {
    let u = user("+@read ~*");
    assert_eq!(check(&u, "GET k"), Ok(()));
    assert_eq!(check(&u, "SET k v"), Err(Denied::Command));
}

#[test]
fn a_read_only_pattern_allows_reading_its_keys_and_not_writing_them() {
    let u = user("+@all %R~cache:*");
    assert_eq!(check(&u, "GET cache:1"), Ok(()));
    assert_eq!(check(&u, "SET cache:1 v"), Err(Denied::Key(b"cache:1".to_vec())));
    assert_eq!(check(&u, "INCR cache:1"), Err(Denied::Key(b"cache:1".to_vec())));
}

#[test]
fn a_key_outside_every_pattern_is_refused_by_name() {
    let u = user("+@all ~app:*");
    assert_eq!(check(&u, "MSET app:1 a other 2"), Err(Denied::Key(b"other".to_vec())));
    assert_eq!(check(&u, "EXISTS app:1"), Ok(()));
}

#[test]
fn a_write_only_pattern_allows_set_and_not_get() {
    let u = user("+@all %W~log:*");
    assert_eq!(check(&u, "SET log:1 v"), Ok(()));
    assert_eq!(check(&u, "GET log:1"), Err(Denied::Key(b"log:1".to_vec())));
    assert_eq!(check(&u, "SET log:1 v GET"), Err(Denied::Key(b"log:1".to_vec())));
}

#[test]
fn whoami_is_allowed_to_a_user_without_admin_commands() {
    let u = user("+@all -@admin ~*");
    assert_eq!(check(&u, "ACL WHOAMI"), Ok(()));
    assert_eq!(check(&u, "ACL SETUSER x"), Err(Denied::Command));
}

#[test]
fn adding_a_password_ends_nopass_and_nopass_drops_every_password() {
    let mut u = user("nopass >secret1");
    assert!(!u.nopass);
    assert!(u.passwords[0].matches(b"secret1"));
    u.apply(b"nopass").unwrap();
    assert!(u.passwords.is_empty() && u.nopass);
}

#[test]
fn removing_a_password_the_user_lacks_is_an_error() {
    let mut u = user(">a");
    let e = u.apply(b"<b").unwrap_err();
    assert!(e.to_string().contains("no such password"), "{e}");
    u.apply(b"<a").unwrap();
    assert!(u.passwords.is_empty());
}

#[test]
fn a_hashed_password_rule_is_refused_with_the_way_to_give_one() {
    let e = User::new().apply(b"#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8");
    assert!(e.unwrap_err().to_string().contains("'>'"));
}

#[test]
fn unknown_commands_and_categories_are_errors_naming_the_rule() {
    let e = User::new().apply(b"+frobnicate").unwrap_err();
    assert_eq!(e.to_string(), "Error in ACL SETUSER modifier '+frobnicate': Unknown command");
    let e = User::new().apply(b"+@nope").unwrap_err();
    assert!(e.to_string().contains("Unknown command category"), "{e}");
}

#[test]
fn all_commands_forgets_the_rules_before_it() {
    let u = user("+get -set +@all");
    assert_eq!(u.commands, vec!["+@all".to_string()]);
}

#[test]
fn a_user_is_described_as_acl_list_shows_it() {
    let u = user("on nopass ~* %R~ro:* +@all -flushdb");
    assert_eq!(u.describe(), "on nopass ~* %R~ro:* +@all -flushdb");
    let p = user("on >pw");
    assert!(p.describe().starts_with("on #"), "{}", p.describe());
    assert!(!p.describe().contains("pw "));
}

#[test]
fn reset_makes_a_new_user() {
    let u = user("on >pw ~* +@all reset");
    assert_eq!(u, User::new());
}

#[test]
fn emptying_the_cluster_needs_admin_commands() {
    let u = user("on nopass ~* +@all -@admin");
    assert_eq!(check(&u, "FLUSHDB"), Err(Denied::Command));
    assert_eq!(check(&u, "FLUSHALL"), Err(Denied::Command));
    assert_eq!(check(&u, "DEL k"), Ok(()));
}
