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
  // sum_j log det A_j and sum_j d_j' A_j^-1 d_j, A_j = sigma^2 I + (M_j L)(M_j L)'.
  // Groups are padded to q rows (a padded row has M = 0, d = 0: it adds log sigma^2).
  vector glm_group_terms(array[] matrix M, array[] vector d, matrix L, real s2) {
    int J = size(M);
    int q = cols(L);
    real logdet = 0;
    real quad = 0;
    for (j in 1:J) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      vector[q] v = mdivide_left_tri_low(LA, d[j]);
      logdet += 2 * sum(log(diagonal(LA)));
      quad += dot_self(v);
    }
    return [logdet, quad]';
  }
  // log p(y | beta, Sigma, sigma), group effects integrated out (DESIGN.md, "Marginal").
  real glm_marginal_ll(vector beta, matrix L, real sigma, int N, array[] matrix M,
                         array[] vector e_star, array[] matrix F, matrix C2, vector beta_star,
                         real rss_min) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta);
    real s2 = square(sigma);
    vector[p] delta = beta - beta_star;
    real logdet = (N - J * q) * log(s2);
    real quad = (rss_min + quad_form(C2, delta)) / s2;
    if (q > 0) {
      array[J] vector[q] d;
      for (j in 1:J) {
        d[j] = e_star[j] - F[j] * delta;
      }
      vector[2] t = glm_group_terms(M, d, L, s2);
      logdet += t[1];
      quad += t[2];
    }
    return -0.5 * (N * log(2 * pi()) + logdet + quad);
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
  // log p(y | Sigma, sigma) with beta ~ N(beta_loc, diag(beta_scale^2)) integrated out as well
  // (DESIGN.md, "Collapsed"). Everything is relative to beta_star, so nothing large cancels as
  // sigma -> 0. A non-finite or indefinite P rejects the proposal (Stan's cholesky_decompose throws).
  real glm_collapsed_ll(matrix L, real sigma, int N, array[] matrix M, array[] vector e_star,
                        array[] matrix F, matrix C2, vector beta_star, real rss_min,
                        vector beta_loc, vector beta_scale) {
    int J = size(M);
    int q = cols(L);
    int p = rows(beta_star);
    real s2 = square(sigma);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    real q0 = dot_self((beta_star - beta_loc) ./ beta_scale);
    real logdet = (N - J * q) * log(s2) + 2 * sum(log(beta_scale));
    for (j in 1:(q > 0 ? J : 0)) {
      matrix[q, q] LA = cholesky_decompose(add_diag(tcrossprod(M[j] * L), s2));
      matrix[q, p] FA = mdivide_left_tri_low(LA, F[j]);
      vector[q] ea = mdivide_left_tri_low(LA, e_star[j]);
      P += crossprod(FA);
      g += FA' * ea;
      q0 += dot_self(ea);
      logdet += 2 * sum(log(diagonal(LA)));
    }
    if (p == 0) {
      return -0.5 * (N * log(2 * pi()) + logdet + rss_min / s2 + q0);
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g);
    return -0.5 * (N * log(2 * pi()) + logdet + 2 * sum(log(diagonal(LP))) + rss_min / s2 + q0
                   - dot_self(w));
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
  // Marginal log likelihood, q = 1 or 2 (vectorised); same value as glm_marginal_ll.
  real glm_marginal_vec_ll(vector beta, vector tau, matrix L_Omega, int correlated, real sigma, int N,
                           int J, vector m2, vector e1, vector e2, matrix F1, matrix F2, matrix MA11,
                           matrix MA12, matrix MA22, vector detM2, matrix C2, vector beta_star,
                           real rss_min) {
    int q = rows(tau);
    real s2 = square(sigma);
    vector[rows(beta)] delta = beta - beta_star;
    real logdet = (N - J * q) * log(s2);
    real quad = (rss_min + quad_form(C2, delta)) / s2;
    vector[J] d1 = e1 - F1 * delta;
    if (q == 1) {
      vector[J] a = s2 + m2 * square(tau[1]);
      logdet += sum(log(a));
      quad += sum(square(d1) ./ a);
    } else {
      vector[J] d2 = e2 - F2 * delta;
      tuple(matrix[J, 3], real) inv = glm_q2_inverse(MA11, MA12, MA22, detM2,
                                               glm_sigma2_vec(tau, L_Omega, correlated),
                                               glm_sigma2_det(tau, L_Omega, correlated), s2);
      logdet += inv.2;
      quad += dot_product(inv.1[ : , 1], square(d1)) + 2 * dot_product(inv.1[ : , 2], d1 .* d2)
              + dot_product(inv.1[ : , 3], square(d2));
    }
    return -0.5 * (N * log(2 * pi()) + logdet + quad);
  }
  // Collapsed log likelihood, q = 1 or 2 (vectorised); same value as glm_collapsed_ll.
  // FFk (J x p(p+1)/2), FEk (J x p), EEk (J) are the data products of F and e* weighted by
  // A^-1 entry k (q = 1: one entry; q = 2: [11, 12, 22]).
  real glm_collapsed_vec_ll(vector tau, matrix L_Omega, int correlated, real sigma, int N, int J,
                            vector m2, matrix MA11, matrix MA12, matrix MA22, vector detM2,
                            matrix FF1, matrix FF2, matrix FF3, matrix FE1, matrix FE2, matrix FE3,
                            vector EE1, vector EE2, vector EE3, matrix C2, vector beta_star,
                            real rss_min, vector beta_loc, vector beta_scale) {
    int q = rows(tau);
    int p = rows(beta_star);
    real s2 = square(sigma);
    matrix[p, p] P = add_diag(C2 / s2, inv_square(beta_scale));
    vector[p] g = (beta_loc - beta_star) ./ square(beta_scale);
    real q0 = dot_self((beta_star - beta_loc) ./ beta_scale);
    real logdet = (N - J * q) * log(s2) + 2 * sum(log(beta_scale));
    if (q == 1) {
      vector[J] a = s2 + m2 * square(tau[1]);
      vector[J] ainv = inv(a);
      logdet += sum(log(a));
      P += glm_unpack(FF1' * ainv, p);
      g += FE1' * ainv;
      q0 += dot_product(EE1, ainv);
    } else {
      tuple(matrix[J, 3], real) inv = glm_q2_inverse(MA11, MA12, MA22, detM2,
                                               glm_sigma2_vec(tau, L_Omega, correlated),
                                               glm_sigma2_det(tau, L_Omega, correlated), s2);
      logdet += inv.2;
      P += glm_unpack(FF1' * inv.1[ : , 1] + FF2' * inv.1[ : , 2] + FF3' * inv.1[ : , 3], p);
      g += FE1' * inv.1[ : , 1] + FE2' * inv.1[ : , 2] + FE3' * inv.1[ : , 3];
      q0 += dot_product(EE1, inv.1[ : , 1]) + dot_product(EE2, inv.1[ : , 2])
            + dot_product(EE3, inv.1[ : , 3]);
    }
    if (p == 0) {
      return -0.5 * (N * log(2 * pi()) + logdet + rss_min / s2 + q0);
    }
    matrix[p, p] LP = cholesky_decompose(P);
    vector[p] w = mdivide_left_tri_low(LP, g);
    return -0.5 * (N * log(2 * pi()) + logdet + 2 * sum(log(diagonal(LP))) + rss_min / s2 + q0
                   - dot_self(w));
  }
