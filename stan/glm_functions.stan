  // Scale priors of the general model, fully normalised (the numpy densities
  // reproduce them term by term). family: 1 = uniform(0, a), 2 = half-normal(0, a),
  // 3 = half-Student-t(df = b, 0, a), 4 = exponential(rate = a).
  real glm_scale_lpdf(real s, int family, real a, real b) {
    if (family == 1) {
      return uniform_lpdf(s | 0, a);
    }
    if (family == 2) {
      return normal_lpdf(s | 0, a) + log2();
    }
    if (family == 3) {
      return student_t_lpdf(s | b, 0, a) + log2();
    }
    return exponential_lpdf(s | a);
  }
  real glm_scale_rng(int family, real a, real b) {
    if (family == 1) {
      return uniform_rng(0, a);
    }
    if (family == 2) {
      return abs(normal_rng(0, a));
    }
    if (family == 3) {
      return abs(student_t_rng(b, 0, a));
    }
    return exponential_rng(a);
  }
  // Upper bound of a scale parameter: the uniform's upper end, else none.
  real glm_scale_upper(int family, real a) {
    return family == 1 ? a : positive_infinity();
  }
  // L with Sigma = L L': diag(tau) L_Omega, or diag(tau) for independent terms.
  matrix glm_sigma_factor(vector tau, matrix L_Omega, int correlated) {
    int q = rows(tau);
    if (correlated && q > 1) {
      return diag_pre_multiply(tau, L_Omega);
    }
    return diag_matrix(tau);
  }
  // Draw u_j | beta, Sigma, sigma, y exactly (rows of the J x q result).
  // With B = M_j L and H = sigma^2 I + B'B: w ~ N(H^-1 B' d, sigma^2 H^-1), u = L w.
  matrix glm_draw_u_rng(vector beta, matrix L, real sigma, array[] matrix M,
                        array[] vector e_star, array[] matrix F, vector beta_star) {
    int J = size(M);
    int q = cols(L);
    matrix[J, q] u;
    vector[rows(beta)] delta = beta - beta_star;
    for (j in 1:J) {
      matrix[q, q] B = M[j] * L;
      matrix[q, q] LH = cholesky_decompose(add_diag(crossprod(B), square(sigma)));
      vector[q] d = e_star[j] - F[j] * delta;
      vector[q] mean_w = mdivide_right_tri_low(mdivide_left_tri_low(LH, B' * d)', LH)';
      vector[q] z = to_vector(normal_rng(rep_vector(0, q), 1));
      vector[q] w = mean_w + sigma * mdivide_right_tri_low(z', LH)';
      u[j] = (L * w)';
    }
    return u;
  }
  // Draw beta | Sigma, sigma, y exactly: beta_star + N(P^-1 g, P^-1).
  vector glm_draw_beta_rng(matrix L, real sigma, array[] matrix M, array[] vector e_star,
                           array[] matrix F, matrix C2, vector beta_star, vector beta_loc,
                           vector beta_scale) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta_star);
    real s2 = square(sigma);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    for (j in 1:(q > 0 ? J : 0)) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      matrix[q, p] FA = mdivide_left_tri_low(LA, F[j]);
      P += crossprod(FA);
      g += FA' * mdivide_left_tri_low(LA, e_star[j]);
    }
    if (p == 0) {
      return beta_star;
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g) + to_vector(normal_rng(rep_vector(0, p), 1));
    return beta_star + mdivide_right_tri_low(w', LP)';
  }
  // ---- Vectorised forms for one or two group terms (every group at once; the loop forms
  // above serve q >= 3). Data products come from glm_vector_data.stan.
  // Sigma as a vector [Sigma11, Sigma12, Sigma22] and det(Sigma), from tau and L_Omega.
  vector glm_sigma2_vec(vector tau, matrix L_Omega, int correlated) {
    real rho = correlated ? L_Omega[2, 1] : 0;
    return [square(tau[1]), rho * tau[1] * tau[2], square(tau[2])]';
  }
  real glm_sigma2_det(vector tau, matrix L_Omega, int correlated) {
    real l22 = correlated ? L_Omega[2, 2] : 1;
    return square(tau[1] * tau[2] * l22);
  }
  // Entries of A_j^-1 for q = 2 as a J x 3 matrix [inv11, inv12, inv22], and sum_j log det A_j.
  // det A_j = s2 (s2 + tr(M Sigma M')) + det(M)^2 det(Sigma): a sum of non-negative terms,
  // so nothing cancels when Sigma or sigma is nearly singular.
  tuple(matrix, real) glm_q2_inverse(matrix MA11, matrix MA12, matrix MA22, vector detM2, vector svec,
                                     real sdet, real s2) {
    int J = rows(MA11);
    vector[J] b11 = MA11 * svec;
    vector[J] b22 = MA22 * svec;
    vector[J] a12 = MA12 * svec;
    vector[J] det = s2 * (s2 + b11 + b22) + detM2 * sdet;
    vector[J] inv_det = inv(det);
    matrix[J, 3] out;
    out[ : , 1] = (s2 + b22) .* inv_det;
    out[ : , 2] = -a12 .* inv_det;
    out[ : , 3] = (s2 + b11) .* inv_det;
    return (out, sum(log(det)));
  }
  // Symmetric p x p matrix from its packed upper triangle (row by row).
  matrix glm_unpack(vector packed, int p) {
    matrix[p, p] P;
    int k = 1;
    for (a in 1:p) {
      for (b in a:p) {
        P[a, b] = packed[k];
        P[b, a] = packed[k];
        k += 1;
      }
    }
    return P;
  }
  // Sigma's entries for q = 1 ([tau^2]) or q = 2 ([Sigma11, Sigma12, Sigma22]) and det(Sigma) (0 for q = 1):
  // the covariance arguments of hierlin_glm_marginal_ll / hierlin_glm_collapsed_ll.
  vector glm_svec(vector tau, matrix L_Omega, int correlated) {
    if (rows(tau) == 1) {
      return [square(tau[1])]';
    }
    return glm_sigma2_vec(tau, L_Omega, correlated);
  }
  real glm_sdet(vector tau, matrix L_Omega, int correlated) {
    return rows(tau) == 1 ? 0 : glm_sigma2_det(tau, L_Omega, correlated);
  }
  // ---- Exact draws for one or two group terms, vectorised over the groups (both variants; the loop
  // forms glm_draw_u_rng / glm_draw_beta_rng serve q >= 3). mv11..mv22: M_j's entries (glm_vector_data).
  // u_j | beta, Sigma, sigma, y as glm_draw_u_rng: B = M_j L, H = sigma^2 I + B'B, w ~ N(H^-1 B'd, sigma^2 H^-1),
  // u = L w; det H = sigma^2 (sigma^2 + |B|^2) + det(M)^2 det(L)^2 (non-negative terms) gives chol(H)'s (2, 2).
  matrix glm_draw_u_vec_rng(vector beta, matrix L, real sigma, vector mv11, vector mv12, vector mv21,
                            vector mv22, vector detM2, vector e1, vector e2, matrix F1, matrix F2,
                            vector beta_star) {
    int J = rows(e1);
    int q = cols(L);
    real s2 = square(sigma);
    vector[rows(beta)] delta = beta - beta_star;
    vector[J] d1 = e1 - F1 * delta;
    matrix[J, q] u;
    if (q == 1) {
      vector[J] b = mv11 * L[1, 1];
      vector[J] h = s2 + square(b);
      u[ : , 1] = L[1, 1] * (b .* d1 ./ h + sigma * to_vector(normal_rng(rep_vector(0, J), 1)) ./ sqrt(h));
      return u;
    }
    vector[J] d2 = e2 - F2 * delta;
    vector[J] b11 = mv11 * L[1, 1] + mv12 * L[2, 1];
    vector[J] b12 = mv12 * L[2, 2];
    vector[J] b21 = mv21 * L[1, 1] + mv22 * L[2, 1];
    vector[J] b22 = mv22 * L[2, 2];
    vector[J] h11 = s2 + square(b11) + square(b21);
    vector[J] h12 = b11 .* b12 + b21 .* b22;
    vector[J] h22 = s2 + square(b12) + square(b22);
    vector[J] deth = s2 * (h11 + square(b12) + square(b22)) + detM2 * square(L[1, 1] * L[2, 2]);
    vector[J] r1 = b11 .* d1 + b21 .* d2;
    vector[J] r2 = b12 .* d1 + b22 .* d2;
    vector[J] c11 = sqrt(h11);  // chol(H) = [c11, 0; c21, c22]
    vector[J] c21 = h12 ./ c11;
    vector[J] c22 = sqrt(deth ./ h11);
    vector[J] x2 = to_vector(normal_rng(rep_vector(0, J), 1)) ./ c22;  // chol(H)^-T z
    vector[J] x1 = (to_vector(normal_rng(rep_vector(0, J), 1)) - c21 .* x2) ./ c11;
    vector[J] w1 = (h22 .* r1 - h12 .* r2) ./ deth + sigma * x1;
    vector[J] w2 = (h11 .* r2 - h12 .* r1) ./ deth + sigma * x2;
    u[ : , 1] = L[1, 1] * w1;
    u[ : , 2] = L[2, 1] * w1 + L[2, 2] * w2;
    return u;
  }
  // P = C2/s2 + diag(beta_scale^-2) + sum_j F_j' A_j^-1 F_j, g = (beta_loc - beta*)/beta_scale^2 + sum_j F_j' A_j^-1 e*_j,
  // q0 = |(beta* - beta_loc)/beta_scale|^2 + sum_j e*_j' A_j^-1 e*_j and sum_j log det A_j, for q = 1 or 2
  // (the data products FFk, FEk, EEk of glm_vector_data.stan); a function of svec, sdet, s2 like the likelihood.
  tuple(matrix, vector, real, real) glm_collapsed_pg(vector svec, real sdet, real s2, vector m2, matrix MA11,
                                                     matrix MA12, matrix MA22, vector detM2, matrix FF1,
                                                     matrix FF2, matrix FF3, matrix FE1, matrix FE2, matrix FE3,
                                                     vector EE1, vector EE2, vector EE3, matrix C2,
                                                     vector beta_star, vector beta_loc, vector beta_scale) {
    int p = rows(beta_star);
    int J = rows(EE1);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    real q0 = dot_self((beta_star - beta_loc) ./ beta_scale);
    real logdet;
    if (rows(svec) == 1) {
      vector[J] a = s2 + m2 * svec[1];
      vector[J] ainv = inv(a);
      logdet = sum(log(a));
      P += glm_unpack(FF1' * ainv, p);
      g += FE1' * ainv;
      q0 += dot_product(EE1, ainv);
    } else {
      tuple(matrix[J, 3], real) inv = glm_q2_inverse(MA11, MA12, MA22, detM2, svec, sdet, s2);
      logdet = inv.2;
      P += glm_unpack(FF1' * inv.1[ : , 1] + FF2' * inv.1[ : , 2] + FF3' * inv.1[ : , 3], p);
      g += FE1' * inv.1[ : , 1] + FE2' * inv.1[ : , 2] + FE3' * inv.1[ : , 3];
      q0 += dot_product(EE1, inv.1[ : , 1]) + dot_product(EE2, inv.1[ : , 2])
            + dot_product(EE3, inv.1[ : , 3]);
    }
    return (P, g, q0, logdet);
  }
  // beta | Sigma, sigma, y exactly, q = 1 or 2: beta_star + N(P^-1 g, P^-1) (as glm_draw_beta_rng).
  vector glm_draw_beta_vec_rng(vector svec, real sdet, real sigma, vector m2, matrix MA11, matrix MA12,
                               matrix MA22, vector detM2, matrix FF1, matrix FF2, matrix FF3, matrix FE1,
                               matrix FE2, matrix FE3, vector EE1, vector EE2, vector EE3, matrix C2,
                               vector beta_star, vector beta_loc, vector beta_scale) {
    int p = rows(beta_star);
    if (p == 0) {
      return beta_star;
    }
    tuple(matrix[p, p], vector[p], real, real) pg = glm_collapsed_pg(svec, sdet, square(sigma), m2, MA11, MA12,
                                                                      MA22, detM2, FF1, FF2, FF3, FE1, FE2, FE3,
                                                                      EE1, EE2, EE3, C2, beta_star, beta_loc,
                                                                      beta_scale);
    matrix[p, p] LP = cholesky_decompose(pg.1);
    vector[p] w = mdivide_left_tri_low(LP, pg.2) + to_vector(normal_rng(rep_vector(0, p), 1));
    return beta_star + mdivide_right_tri_low(w', LP)';
  }
