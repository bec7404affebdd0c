use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut w: Vec<&str> = s.split_whitespace().collect();
    w.reverse();
    println!("{}", w.join(" "));
}
