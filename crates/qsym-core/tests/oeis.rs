//! Values checked against the OEIS (https://oeis.org), not against this
//! crate's own output.

use qsym_core::*;
use rug::Integer;

fn ints(s: &Series) -> Vec<i64> {
    s.coeffs()
        .iter()
        .map(|c| c.to_i64().expect("small coefficient"))
        .collect()
}

#[test]
fn a000041_partition_numbers() {
    let expected: [i64; 30] = [
        1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42, 56, 77, 101, 135, 176, 231, 297, 385, 490, 627, 792,
        1002, 1255, 1575, 1958, 2436, 3010, 3718, 4565,
    ];
    let got: Vec<i64> = partition_counts(29)
        .iter()
        .map(|c| c.to_i64().unwrap())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn a000041_large_values() {
    assert_eq!(partition_count(100), 190_569_292);
    assert_eq!(partition_count(200), Integer::from(3_972_999_029_388_i64));
    let p1000: Integer = "24061467864032622473692149727991".parse().unwrap();
    assert_eq!(partition_count(1000), p1000);
    let p10000: Integer = "36167251325636293988820471890953695495016030339315650422081868605887\
                           952568754066420592310556052906916435144"
        .parse()
        .unwrap();
    assert_eq!(partition_count(10000), p10000);
}

#[test]
fn a010815_euler_pentagonal_theorem() {
    // (q;q)_inf
    let s = qpochhammer_inf(&Monomial::q(), 27);
    let mut expected = vec![0_i64; 27];
    for (g, v) in [
        (0, 1),
        (1, -1),
        (2, -1),
        (5, 1),
        (7, 1),
        (12, -1),
        (15, -1),
        (22, 1),
        (26, 1),
    ] {
        expected[g] = v;
    }
    assert_eq!(ints(&s), expected);
}

#[test]
fn a010816_jacobi_cube() {
    // (q;q)_inf^3 = sum (-1)^n (2n+1) q^(n(n+1)/2)
    let s = eta_quotient(&[EtaFactor { m: 1, e: 3 }], 22);
    let mut expected = vec![0_i64; 22];
    for (g, v) in [
        (0, 1),
        (1, -3),
        (3, 5),
        (6, -7),
        (10, 9),
        (15, -11),
        (21, 13),
    ] {
        expected[g] = v;
    }
    assert_eq!(ints(&s), expected);
}

#[test]
fn a000594_ramanujan_tau() {
    // Delta = q (q;q)_inf^24, so tau(n+1) is the coefficient of q^n.
    let expected: [i64; 28] = [
        1, -24, 252, -1472, 4830, -6048, -16744, 84480, -113643, -115920, 534612, -370944, -577738,
        401856, 1217160, 987136, -6905934, 2727432, 10661420, -7109760, -4219488, -12830688,
        18643272, 21288960, -25499225, 13865712, -73279080, 24647168,
    ];
    let s = eta_quotient(&[EtaFactor { m: 1, e: 24 }], expected.len());
    assert_eq!(ints(&s), expected);
}

#[test]
fn a002865_partitions_without_ones() {
    // (q;q)_1 / (q;q)_inf = 1 / (q^2;q)_inf
    let expected: [i64; 21] = [
        1, 0, 1, 1, 2, 2, 4, 4, 7, 8, 12, 14, 21, 24, 34, 41, 55, 66, 88, 105, 137,
    ];
    let s = qpochhammer_ratio(&Monomial::q(), Some(1), expected.len());
    assert_eq!(ints(&s), expected);
}

#[test]
fn a000009_distinct_parts() {
    // (-q;q)_inf
    let expected: [i64; 21] = [
        1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 27, 32, 38, 46, 54, 64,
    ];
    let s = qpochhammer_inf(&Monomial::new(-1, 1), expected.len());
    assert_eq!(ints(&s), expected);
}

#[test]
fn a015128_overpartitions() {
    // (-q;q)_inf / (q;q)_inf
    let expected: [i64; 13] = [1, 2, 4, 8, 14, 24, 40, 64, 100, 154, 232, 344, 504];
    let s = qpochhammer_ratio(&Monomial::new(-1, 1), None, expected.len());
    assert_eq!(ints(&s), expected);
}

#[test]
fn a000122_theta3_and_a002448_theta4() {
    let n = 50;
    let t3 = ints(&theta3(n));
    let t4 = ints(&theta4(n));
    for i in 0..n {
        let r = (i as f64).sqrt() as usize;
        let square = r * r == i;
        let want3 = if i == 0 {
            1
        } else if square {
            2
        } else {
            0
        };
        let want4 = if square && r % 2 == 1 { -want3 } else { want3 };
        assert_eq!(t3[i], want3, "theta3 coefficient of q^{i}");
        assert_eq!(t4[i], want4, "theta4 coefficient of q^{i}");
    }
}

#[test]
fn a004018_sums_of_two_squares() {
    let expected: [i64; 26] = [
        1, 4, 4, 0, 4, 8, 0, 0, 4, 4, 8, 0, 0, 8, 0, 0, 4, 8, 4, 0, 8, 0, 0, 0, 0, 12,
    ];
    let t = theta3(expected.len());
    assert_eq!(ints(&t.pow(2).unwrap()), expected);
}

#[test]
fn theta2_is_twice_the_triangular_indicator() {
    let t = ints(&theta2_shifted(40));
    for (i, c) in t.iter().enumerate() {
        let tri = (0..10).any(|n| n * (n + 1) == i);
        assert_eq!(*c, if tri { 2 } else { 0 }, "coefficient of q^{i}");
    }
}

#[test]
fn partition_generating_function_is_inverse_euler() {
    let inv = qpochhammer_inf(&Monomial::q(), 200).inverse().unwrap();
    assert_eq!(inv.coeffs(), partition_counts(199).as_slice());
}
