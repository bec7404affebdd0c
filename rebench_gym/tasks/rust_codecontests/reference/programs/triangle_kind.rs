use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    for i in 0..v[0] as usize {
        let mut t = [v[1 + 3 * i], v[2 + 3 * i], v[3 + 3 * i]];
        t.sort();
        let kind = if t[0] + t[1] <= t[2] {
            "invalid"
        } else if t[0] == t[2] {
            "equilateral"
        } else if t[0] == t[1] || t[1] == t[2] {
            "isosceles"
        } else {
            "scalene"
        };
        println!("{}", kind);
    }
}
