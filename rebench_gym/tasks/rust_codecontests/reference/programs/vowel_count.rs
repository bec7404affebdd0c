use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let c = s.trim().chars().filter(|c| "aeiou".contains(*c)).count();
    println!("{}", c);
}
