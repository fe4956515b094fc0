"""Official test data used by the crypto tests, with the clause each set comes from.

Values are hex strings exactly as printed in the specifications (facts, re-typed here).
"""

from __future__ import annotations

# --- MILENAGE: TS 35.207 §4 (test sets 1-6; identical to TS 35.208 §4.3 sets 1-6) ---------------
# Fields: k, rand, sqn, amf, op, opc, f1, f1*, f2, f5, f3, f4, f5*.
MILENAGE_SETS: dict[int, dict[str, str]] = {
    1: dict(
        k="465b5ce8b199b49faa5f0a2ee238a6bc", rand="23553cbe9637a89d218ae64dae47bf35", sqn="ff9bb4d0b607",
        amf="b9b9", op="cdc202d5123e20f62b6d676ac72cb318", opc="cd63cb71954a9f4e48a5994e37a02baf",
        f1="4a9ffac354dfafb3", f1star="01cfaf9ec4e871e9", f2="a54211d5e3ba50bf", f5="aa689c648370",
        f3="b40ba9a3c58b2a05bbf0d987b21bf8cb", f4="f769bcd751044604127672711c6d3441", f5star="451e8beca43b",
    ),
    2: dict(
        k="0396eb317b6d1c36f19c1c84cd6ffd16", rand="c00d603103dcee52c4478119494202e8", sqn="fd8eef40df7d",
        amf="af17", op="ff53bade17df5d4e793073ce9d7579fa", opc="53c15671c60a4b731c55b4a441c0bde2",
        f1="5df5b31807e258b0", f1star="a8c016e51ef4a343", f2="d3a628ed988620f0", f5="c47783995f72",
        f3="58c433ff7a7082acd424220f2b67c556", f4="21a8c1f929702adb3e738488b9f5c5da", f5star="30f1197061c1",
    ),
    3: dict(
        k="fec86ba6eb707ed08905757b1bb44b8f", rand="9f7c8d021accf4db213ccff0c7f71a6a", sqn="9d0277595ffc",
        amf="725c", op="dbc59adcb6f9a0ef735477b7fadf8374", opc="1006020f0a478bf6b699f15c062e42b3",
        f1="9cabc3e99baf7281", f1star="95814ba2b3044324", f2="8011c48c0c214ed2", f5="33484dc2136b",
        f3="5dbdbb2954e8f3cde665b046179a5098", f4="59a92d3b476a0443487055cf88b2307b", f5star="deacdd848cc6",
    ),
    4: dict(
        k="9e5944aea94b81165c82fbf9f32db751", rand="ce83dbc54ac0274a157c17f80d017bd6", sqn="0b604a81eca8",
        amf="9e09", op="223014c5806694c007ca1eeef57f004f", opc="a64a507ae1a2a98bb88eb4210135dc87",
        f1="74a58220cba84c49", f1star="ac2cc74a96871837", f2="f365cd683cd92e96", f5="f0b9c08ad02e",
        f3="e203edb3971574f5a94b0d61b816345d", f4="0c4524adeac041c4dd830d20854fc46b", f5star="6085a86c6f63",
    ),
    5: dict(
        k="4ab1deb05ca6ceb051fc98e77d026a84", rand="74b0cd6031a1c8339b2b6ce2b8c4a186", sqn="e880a1b580b6",
        amf="9f07", op="2d16c5cd1fdf6b22383584e3bef2a8d8", opc="dcf07cbd51855290b92a07a9891e523e",
        f1="49e785dd12626ef2", f1star="9e85790336bb3fa2", f2="5860fc1bce351e7e", f5="31e11a609118",
        f3="7657766b373d1c2138f307e3de9242f9", f4="1c42e960d89b8fa99f2744e0708ccb53", f5star="fe2555e54aa9",
    ),
    6: dict(
        k="6c38a116ac280c454f59332ee35c8c4f", rand="ee6466bc96202c5a557abbeff8babf63", sqn="414b98222181",
        amf="4464", op="1ba00a1a7c6700ac8c3ff3e96ad08725", opc="3803ef5363b947c6aaa225e58fae3934",
        f1="078adfb488241a57", f1star="80246b8d0186bcf1", f2="16c8233f05a0ac28", f5="45b0f69ab06c",
        f3="3f8c7587fe8e4b233af676aede30ba3b", f4="a7466cc1e6b2a1337d49d3b66e95d7b4", f5star="1f53cd2b1113",
    ),
}

# --- 128-EIA2: TS 33.401 Annex C.2, test sets 1-7 (C.2.1-C.2.7) ---------------------------------
# (key, count, bearer, direction, length in bits, message, MAC)
EIA2_SETS: dict[int, tuple[str, int, int, int, int, str, str]] = {
    1: ("2bd6459f82c5b300952c49104881ff48", 0x38A6F056, 0x18, 0, 58, "3332346263393840", "118c6eb8"),
    2: ("d3c5d592327fb11c4035c6680af8c6d1", 0x398A59B4, 0x1A, 1, 64, "484583d5afe082ae", "b93787e6"),
    3: (
        "7e5e94431e11d73828d739cc6ced4573", 0x36AF6144, 0x18, 1, 254,
        "b3d3c9170a4e1632f60f861013d22d84b726b6a278d802d1eeaf1321ba5929dc",
        "1f60b01d",
    ),
    4: (
        "d3419be821087acd02123a9248033359", 0xC7590EA9, 0x17, 0, 511,
        "bbb057038809496bcff86d6fbc8ce5b135a06b166054f2d565be8ace75dc851e"
        "0bcdd8f07141c495872fb5d8c0c66a8b6da556663e4e461205d84580bee5bc7e",
        "6846a2f0",
    ),
    5: (
        "83fd23a244a74cf358da3019f1722635", 0x36AF6144, 0x0F, 1, 768,
        "35c68716633c66fb750c266865d53c11ea05b1e9fa49c8398d48e1efa5909d39"
        "47902837f5ae96d5a05bc8d61ca8dbef1b13a4b4abfe4fb1006045b674bb5472"
        "9304c382be53a5af05556176f6eaa2ef1d05e4b083181ee674cda5a485f74d7a",
        "e657e182",
    ),
    6: (
        "6832a65cff4473621ebdd4ba26a921fe", 0x36AF6144, 0x18, 0, 383,
        "d3c53839626820717765667620323837636240981ba6824c1bfb1ab485472029b71d808ce33e2cc3c0b5fc1f3de8a6dc",
        "f0668c1e",
    ),
    7: (
        "5d0a80d8134ae19677824b671e838af4", 0x7827FAB2, 0x05, 1, 2558,
        "70dedf2dc42c5cbd3a96f8a0b11418b3608d5733604a2cd36aabc70ce3193bb5153be2d3c06dfdb2d16e9c357158be6a41d6b861e491db3f"
        "bfeb518efcf048d7d58953730ff30c9ec470ffcd663dc34201c36addc0111c35b38afee7cfdb582e3731f8b4baa8d1a89c06e81199a97162"
        "27be344efcb436ddd0f096c064c3b5e2c399993fc77394f9e09720a811850ef23b2ee05d9e6173609d86e1c0c18ea51a012a00bb413b9cb8"
        "188a703cd6bae31cc67b34b1b00019e6a2b2a690f02671fe7c9ef8dec0094e533763478d58d2c5f5b827a0148c5948a96931acf84f465a64"
        "e62ce74007e991e37ea823fa0fb21923b79905b733b631e6c7d6860a3831ac351a9c730c52ff72d9d308eedbab21fde143a0ea17e23edc1f"
        "74cbb3638a2033aaa15464eaa733385dbbeb6fd73509b857e6a419dca1d8907af977fbac4dfa35ec",
        "f4cc8fa3",
    ),
}

# --- 128-EEA2: TS 33.401 Annex C.1, test sets 1-6 (C.1.1-C.1.6) ---------------------------------
# (key, count, bearer, direction, length in bits, plaintext, ciphertext)
EEA2_SETS: dict[int, tuple[str, int, int, int, int, str, str]] = {
    1: (
        "d3c5d592327fb11c4035c6680af8c6d1", 0x398A59B4, 0x15, 1, 253,
        "981ba6824c1bfb1ab485472029b71d808ce33e2cc3c0b5fc1f3de8a6dc66b1f0",
        "e9fed8a63d155304d71df20bf3e82214b20ed7dad2f233dc3c22d7bdeeed8e78",
    ),
    2: (
        "2bd6459f82c440e0952c49104805ff48", 0xC675A64B, 0x0C, 1, 798,
        "7ec61272743bf1614726446a6c38ced166f6ca76eb5430044286346cef130f92"
        "922b03450d3a9975e5bd2ea0eb55ad8e1b199e3ec4316020e9a1b285e7627953"
        "59b7bdfd39bef4b2484583d5afe082aee638bf5fd5a606193901a08f4ab41aab9b134880",
        "5961605353c64bdca15b195e288553a910632506d6200aa790c4c806c99904cf"
        "2445cc50bb1cf168a49673734e081b57e324ce5259c0e78d4cd97b870976503c"
        "0943f2cb5ae8f052c7b7d392239587b8956086bcab18836042e2e6ce42432a17105c53d0",
    ),
    3: (
        "0a8b6bd8d9b08b08d64e32d1817777fb", 0x544D49CD, 0x04, 0, 310,
        "fd40a41d370a1f65745095687d47ba1d36d2349e23f644392c8ea9c49d40c13271aff264d0f24800",
        "75750d37b4bba2a4dedb34235bd68c6645acdaaca48138a3b0c471e2a7041a576423d2927287f000",
    ),
    4: (
        "aa1f95aea533bcb32eb63bf52d8f831a", 0x72D8C671, 0x10, 1, 1022,
        "fb1b96c5c8badfb2e8e8edfde78e57f2ad81e74103fc430a534dcc37afcec70e"
        "1517bb06f27219dae49022ddc47a068de4c9496a951a6b09edbdc864c7adbd74"
        "0ac50c022f3082bafd22d78197c5d508b977bca13f32e652e74ba728576077ce"
        "628c535e87dc6077ba07d29068590c8cb5f1088e082cfa0ec961302d69cf3d44",
        "dfb440acb3773549efc04628aeb8d8156275230bdc690d94b00d8d95f28c4b56"
        "307f60f4ca55eba661ebba72ac808fa8c49e26788ed04a5d606cb418de74878b"
        "9a22f8ef29590bc4eb57c9faf7c41524a885b8979c423f2f8f8e0592a9879201"
        "be7ff9777a162ab810feb324ba74c4c156e04d39097209653ac33e5a5f2d8864",
    ),
    5: (
        "9618ae46891f86578eebe90ef7a1202e", 0xC675A64B, 0x0C, 1, 1245,
        "8daa17b1ae050529c6827f28c0ef6a1242e93f8b314fb18a77f790ae049fedd6"
        "12267fecaefc450174d76d9f9aa7755a30cd90a9a5874bf48eaf70eea3a62a25"
        "0a8b6bd8d9b08b08d64e32d1817777fb544d49cd49720e219dbf8bbed33904e1"
        "fd40a41d370a1f65745095687d47ba1d36d2349e23f644392c8ea9c49d40c132"
        "71aff264d0f24841d6465f0996ff84e65fc517c53efc3363c38492a8",
        "919c8c33d66789703d05a0d7ce82a2aeac4ee76c0f4da050335e8a84e7897ba5"
        "df2f36bd513e3d0c8578c7a0fcf043e03aa3a39fbaad7d15be074faa5d9029f7"
        "1fb457b647834714b0e18f117fca10677945096c8c5f326ba8d6095eb29c3e36"
        "cf245d1622aafe921f7566c4f5d644f2f1fc0ec684ddb21349747622e209295d"
        "27ff3f95623371d49b147c0af486171f22cd04b1cbeb2658223e6938",
    ),
    6: (
        "54f4e2e04c83786eec8fb5abe8e36566", 0xACA4F50F, 0x0B, 0, 3861,
        "40981ba6824c1bfb4286b299783daf442c099f7ab0f58d5c8e46b104f08f01b4"
        "1ab485472029b71d36bd1a3d90dc3a41b46d51672ac4c9663a2be063da4bc8d2"
        "808ce33e2cccbfc634e1b259060876a0fbb5a437ebcc8d31c19e4454318745e3"
        "fa16bb11adae248879fe52db2543e53cf445d3d828ce0bf5c560593d97278a59"
        "762dd0c2c9cd68d4496a792508614014b13b6aa51128c18cd6a90b87978c2ff1"
        "cabe7d9f898a411bfdb84f68f6727b1499cdd30df0443ab4a66653330bcba110"
        "5e4cec034c73e605b4310eaaadcfd5b0ca27ffd89d144df4792759427c9cc1f8"
        "cd8c87202364b8a687954cb05a8d4e2d99e73db160deb180ad0841e96741a5d5"
        "9fe4189f15420026fe4cd12104932fb38f735340438aaf7eca6fd5cfd3a195ce"
        "5abe65272af607ada1be65a6b4c9c0693234092c4d018f1756c6db9dc8a6d80b"
        "888138616b681262f954d0e7711748780d92291d86299972db741cfa4f37b8b5"
        "6cdb18a7ca8218e86e4b4b716a4d04371fbec262fc5ad0b3819b187b97e55b1a"
        "4d7c19ee24c8b4d7723cfedf045b8acae4869517d80e50615d9035d5d9c5a40a"
        "f602280b542597b0cb18619eeb35925759d195e100e8e4aa0c38a3c2abe0f3d8"
        "ff04f3c33c295069c23694b5bbeacdd542e28e8a94edb9119f412d054be1fa72"
        "00b09000",
        "5cb72c6edc878f1566e10253afc364c9fa540d914db94cbee275d0917ca6af0d"
        "77acb4ef3bbe1a722b2ef5bd1d4b8e2aa5024ec1388a201e7bce7920aec61589"
        "5f763a5564dcc4c482a2ee1d8bfecc4498eca83fbb75f9ab530e0dafbede2fa5"
        "895b82991b6277c529e0f2529d7f79606be96706296dedfa9d7412b616958cb5"
        "63c678c02825c30d0aee77c4c146d2765412421a808d13cec819694c75ad572e"
        "9b973d948b81a9337c3b2a17192e22c2069f7ed1162af44cdea817603665e807"
        "ce40c8e0dd9d6394dc6e31153fe1955c47afb51f2617ee0c5e3b8ef1ad7574ed"
        "343edc2743cc94c990e1f1fd264253c178dea739c0befeebcd9f9b76d49c1015"
        "c9fecf50e53b8b5204dbcd3eed863855dabcdcc94b31e318021568855c8b9e52"
        "a981957a112827f978ba960f1447911b317b5511fbcc7fb13ac153db74251117"
        "e4861eb9e83bffffc4eb7755579038e57924b1f78b3e1ad90bab2a07871b72db"
        "5eef96c334044966db0c37cafd1a89e5646a3580eb6465f121dce9cb88d85b96"
        "cf23ccccd4280767bee8eeb23d8652461db6493103003baf89f5e18261ea43c8"
        "4a92ebffffe4909dc46c5192f825f770600b9602c557b5f8b431a79d45977dd9"
        "c41b863da9e142e90020cfd074d6927b7ab3b6725d1a6f3f98b9c9daa8982aff"
        "06782800",
    ),
}

# --- A public EPS vector with KASME --------------------------------------------------------------
# From the Magma project's subscriberdb MILENAGE tests (test_eutran_vector, github.com/magma/magma),
# whose values were taken from an OpenAirInterface HSS run: an independent implementation of
# TS 33.401 A.2. OP = 0x11 * 16, SQN = 7351, AMF = 8000, PLMN id 02 f8 59 (MCC 208, MNC 95).
KASME_VECTOR: dict[str, str | int] = dict(
    k="8baf473f2f8fd09487cccbd7097c6862",
    op="11" * 16,
    opc="8e27b6af0e692e750f32667a3b14605d",
    rand="000102030405060708090a0b0c0d0e0f",
    sqn=7351,
    amf="8000",
    plmn_id="02f859",
    xres="2daf873d73f310c6",
    autn="6fbfa3801f5780007bde59886e96e4fe",
    kasme="8748c1c0a2826fa405b1e27ea104434ae556c765e8f061ebdb8ae286c44616c2",
)

# --- ECIES: TS 33.501 Annex C.4.3 (Profile A) and C.4.4 (Profile B) -----------------------------
# C.4.x.1: IMSI-based SUPI (scheme input = MSIN 001002086 in BCD); C.4.x.2: NAI-based SUPI
# (scheme input = "verylongusername1"). Intermediate values are checked too.
_HN_A_PRIV = "c53c22208b61860b06c62e5406a7b330c2b577aa5558981510d128247d38bd1d"
_HN_A_PUB = "5a8d38864820197c3394b92613b20b91633cbd897119273bf8e4a6f4eec0a650"
_HN_B_PRIV = "f1ab1074477ebcc7f554ea1c5fc368b1616730155e0041ac447d6301975fecda"
_HN_B_PUB = "0272da71976234ce833a6907425867b82e074d44ef907dfb4b3e21c1c2256ebcd1"
_HN_B_PUB_UNCOMPRESSED = (
    "0472da71976234ce833a6907425867b82e074d44ef907dfb4b3e21c1c2256ebcd1"
    "5a7ded52fcbb097a4ed250e036c7b9c8c7004c4eedc4f068cd7bf8d3f900e3b4"
)
ECIES_SETS: dict[str, dict[str, str]] = {
    "C.4.3.1": dict(
        profile="A", hn_priv=_HN_A_PRIV, hn_pub=_HN_A_PUB,
        eph_priv="c80949f13ebe61af4ebdbd293ea4f942696b9e815d7e8f0096bbf6ed7de62256",
        eph_pub="b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457d",
        shared="028ddf890ec83cdf163947ce45f6ec1a0e3070ea5fe57e2b1f05139f3e82422a",
        enc_key="2ba342cabd2b3b1e5e4e890da11b65f6", icb="e2622cb0cdd08204e721c8ea9b95a7c6",
        mac_key="d9846966fb7cf5fcf11266c5957dea60b83fff2b7c940690a4bfe57b1eb52bd2",
        plaintext="00012080f6", ciphertext="cb02352410", mac="cddd9e730ef3fa87",
    ),
    "C.4.3.2": dict(
        profile="A", hn_priv=_HN_A_PRIV, hn_pub=_HN_A_PUB,
        eph_priv="be9eff3e9f22a4b42a3d236e7a6c500b3f2e7e0c7449988ba800d664bf4fcd97",
        eph_pub="977d8b2fdaa7b64aa700d04227d5b440630ea4ec50f9082273a26bb678c92222",
        shared="511c1df473bb88317f923501f8ba944fd3b667d25699dcb552dbcef60bbdc56d",
        enc_key="fe77b87d87f40428edd71bca69d79059",
        mac_key="d87b69f4fe8cd6b211264ea5e69f682f151a82252684cdb15a047e6ef0595028",
        plaintext="766572796c6f6e67757365726e616d6531", ciphertext="8e358a1582adb15322c10e515141d2039a",
        mac="12e1d7783a97f1ac",
    ),
    "C.4.4.1": dict(
        profile="B", hn_priv=_HN_B_PRIV, hn_pub=_HN_B_PUB,
        eph_priv="99798858a1dc6a2c68637149a4b1dbfd1fdff5addd62a2142f06699ed7602529",
        eph_pub="039aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d1",
        eph_pub_uncompressed="049aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d1"
        "d1f44ea1c87aa7478b954537bde79951e748a43294a4f4cf86eaff1789c9c81f",
        shared="6c7e6518980025b982fbb2ff746e3c2e85a196d252099a7ad23ea7b4c0959cae",
        enc_key="8a65c3aed80295c12bd55087e965702a", icb="ef285b4061c3baee858ab6ec68487dae",
        mac_key="a5ebac0bc48d9cf7ae5ce39cd840ac6c761aec04078fab954d634f923e901c64",
        plaintext="00012080f6", ciphertext="46a33fc271", mac="6ac7dae96aa30a4d",
    ),
    "C.4.4.2": dict(
        profile="B", hn_priv=_HN_B_PRIV, hn_pub=_HN_B_PUB,
        eph_priv="90a5898bd29ffa3f261e00e980067c70a2b1b992a21f5b4fef6d4df69fe804ad",
        eph_pub="03759bb22c563d9f4a6b3c1419e543fc2f39d6823f02a9d71162b39399218b244b",
        shared="bc3529ed79541cf8c007ce9806330f4a5ff15064d7cf4b16943ef8f007597872",
        enc_key="84f9a78995d39e6968047547ecc12c4f",
        mac_key="39d5517e965f8e1252b61345ed45226c5f1a8c69f03d6c91437591f0b8e48fa0",
        plaintext="766572796c6f6e67757365726e616d6531", ciphertext="be22d8b9f856a52ed381cd7eaf4cf2d525",
        mac="3cddc61a0a7882eb",
    ),
}
