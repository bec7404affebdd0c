use std::io::{self, Read};
fn balanced(s: &str) -> bool {
    let mut st = Vec::new();
    for c in s.chars() {
        match c {
            '(' | '[' | '{' => st.push(c),
            _ => {
                let want = match c { ')' => '(', ']' => '[', _ => '{' };
                if st.pop() != Some(want) { return false; }
            }
        }
    }
    st.is_empty()
}
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    for w in s.split_whitespace().skip(1) {
        println!("{}", if balanced(w) { "YES" } else { "NO" });
    }
}
