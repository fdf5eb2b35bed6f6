  // Vectorised forms for q = 1 or 2 (sizes are 0 otherwise): rows of M, e* and F by group,
  // and the products the collapsed program weights by the entries of A_j^-1.
  int n1 = q == 1 ? J : 0;
  int n2 = q == 2 ? J : 0;
  int nv = n1 + n2;
  int npair = (p * (p + 1)) %/% 2;
  vector[n1] m2;
  vector[nv] mv11;  // M_j's entries (the exact draws of u)
  vector[n2] mv12;
  vector[n2] mv21;
  vector[n2] mv22;
  vector[nv] e1;
  vector[n2] e2;
  matrix[nv, p] F1;
  matrix[n2, p] F2;
  matrix[n2, 3] MA11;
  matrix[n2, 3] MA12;
  matrix[n2, 3] MA22;
  vector[n2] detM2;
  matrix[nv, npair] FF1;
  matrix[n2, npair] FF2;
  matrix[n2, npair] FF3;
  matrix[nv, p] FE1;
  matrix[n2, p] FE2;
  matrix[n2, p] FE3;
  vector[nv] EE1;
  vector[n2] EE2;
  vector[n2] EE3;
  for (j in 1:nv) {
    e1[j] = e_star[j][1];
    F1[j] = F[j][1];
    mv11[j] = M[j][1, 1];
    if (q == 1) {
      m2[j] = square(M[j][1, 1]);
    } else {
      matrix[2, 2] m = M[j];
      mv12[j] = m[1, 2];
      mv21[j] = m[2, 1];
      mv22[j] = m[2, 2];
      e2[j] = e_star[j][2];
      F2[j] = F[j][2];
      // A = M Sigma M' with Sigma = [s11, s12; s12, s22]: coefficients of (s11, s12, s22)
      MA11[j] = [square(m[1, 1]), 2 * m[1, 1] * m[1, 2], square(m[1, 2])];
      MA12[j] = [m[1, 1] * m[2, 1], m[1, 1] * m[2, 2] + m[1, 2] * m[2, 1], m[1, 2] * m[2, 2]];
      MA22[j] = [square(m[2, 1]), 2 * m[2, 1] * m[2, 2], square(m[2, 2])];
      detM2[j] = square(m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]);
    }
  }
  for (j in 1:nv) {
    int k = 1;
    for (a in 1:p) {
      for (b in a:p) {
        FF1[j, k] = F1[j, a] * F1[j, b];
        if (q == 2) {
          FF2[j, k] = F1[j, a] * F2[j, b] + F2[j, a] * F1[j, b];
          FF3[j, k] = F2[j, a] * F2[j, b];
        }
        k += 1;
      }
      FE1[j, a] = F1[j, a] * e1[j];
      if (q == 2) {
        FE2[j, a] = F1[j, a] * e2[j] + F2[j, a] * e1[j];
        FE3[j, a] = F2[j, a] * e2[j];
      }
    }
    EE1[j] = square(e1[j]);
    if (q == 2) {
      EE2[j] = 2 * e1[j] * e2[j];
      EE3[j] = square(e2[j]);
    }
  }
