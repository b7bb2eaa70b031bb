BEGIN TRANSACTION;
CREATE TABLE curves (
	run_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	step INTEGER NOT NULL, 
	tokens FLOAT NOT NULL, 
	loss FLOAT, 
	PRIMARY KEY (run_id, kind, step), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',0,102.0,1.66934854191850178036e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',1,204.0,1.66434854191850178039e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',2,307.0,1.6626818752518352085e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',3,409.0,1.66184854191850178047e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',4,512.0,1.6613485419185016667e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',5,614.0,1.6610152085851683523e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',6,716.0,1.66077711334707316843e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',7,819.0,1.6605985419185017804e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',8,921.0,1.66045965302961292305e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','train',9,1024.0,1.66034854191850172362e+02);
INSERT INTO "curves" VALUES('2f6439885306cb1f','eval',9,1024.0,1.65934854191850178041e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',0,102.0,1.66440807195146675207e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',1,204.0,1.65940807195146675209e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',2,307.0,1.65774140528480018021e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',3,409.0,1.65690807195146675217e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',4,512.0,1.65640807195146663841e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',5,614.0,1.656074738618133324e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',6,716.0,1.65583664338003814014e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',7,819.0,1.6556580719514667521e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',8,921.0,1.65551918306257789476e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','train',9,1024.0,1.65540807195146669533e+02);
INSERT INTO "curves" VALUES('f4f66acfc2382a99','eval',9,1024.0,1.65440807195146675212e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',0,102.0,1.69816685733656015603e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',1,204.0,1.69316685733656015601e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',2,307.0,1.69150019066989358408e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',3,409.0,1.69066685733656015596e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',4,512.0,169.016685733656);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',5,614.0,1.68983352400322672792e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',6,716.0,1.68959542876513154393e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',7,819.0,1.68941685733656015606e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',8,921.0,1.68927796844767129868e+02);
INSERT INTO "curves" VALUES('ebada809d0c40958','train',9,1024.0,168.916685733656);
INSERT INTO "curves" VALUES('ebada809d0c40958','eval',9,1024.0,1.68816685733656015599e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',0,102.0,1.69183624123564413819e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',1,204.0,1.68683624123564413822e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',2,307.0,1.68516957456897756633e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',3,409.0,1.68433624123564413817e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',4,512.0,1.68383624123564402453e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',5,614.0,1.68350290790231071013e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',6,716.0,1.68326481266421552614e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',7,819.0,1.68308624123564413823e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',8,921.0,1.68294735234675528088e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','train',9,1024.0,1.68283624123564408132e+02);
INSERT INTO "curves" VALUES('6d50847da8226d20','eval',9,1024.0,1.68183624123564413824e+02);
CREATE TABLE fits (
	id INTEGER NOT NULL, 
	law VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	sweep VARCHAR(200), 
	payload TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "fits" VALUES(1,'chinchilla','2026-11-26 06:07:40.787675','mini','{"bootstrap": 0, "ci": {}, "ci_level": 0.8, "drop_highest": 0, "eff": {}, "elapsed_s": 1.715, "formula": "L = E + A/N^\u03b1 + B/D^\u03b2", "holdout": null, "huber_delta": 0.001, "labels": [], "law": "chinchilla", "method": "varpro", "mode": "staged", "n_runs": 20, "objective": 0.00034005163746716853, "params": {"A": 3.609239526550503e+16, "B": 8795519.451918298, "E": 2.386548904691984, "alpha": 1.9663817268830455, "beta": 0.7778417862408825}, "r2": 0.9171726891566051, "source": "sqlite:///old.db", "sweep": "mini", "warnings": [], "where": null}');
CREATE TABLE runs (
	run_id VARCHAR(64) NOT NULL, 
	sweep VARCHAR(200), 
	status VARCHAR(16) NOT NULL, 
	source VARCHAR(300) NOT NULL, 
	config TEXT NOT NULL, 
	size VARCHAR(64), 
	n_params FLOAT, 
	tokens FLOAT, 
	tokens_per_param FLOAT, 
	w_bits FLOAT, 
	a_bits FLOAT, 
	quantizer VARCHAR(64), 
	precision VARCHAR(64), 
	seed INTEGER, 
	final_eval_loss FLOAT, 
	final_train_loss FLOAT, 
	steps INTEGER, 
	metrics TEXT NOT NULL, 
	error TEXT, 
	attempts INTEGER NOT NULL, 
	wall_time_s FLOAT, 
	tokens_per_s FLOAT, 
	device VARCHAR(64), 
	hardware TEXT, 
	host VARCHAR(200), 
	versions TEXT NOT NULL, 
	data_identity VARCHAR(128), 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	PRIMARY KEY (run_id)
);
INSERT INTO "runs" VALUES('3dde80ca5550e736','mini','completed','import:mini.csv','{"Model Size": 6795600349.289497, "Training FLOP": 9.993852799709755e+18, "color": "#faebdd", "hex_color": "#faebdd", "loss": 5.005581996196243, "x": 154.03592, "y": 140.63364}',NULL,6.79560034928949737538e+09,2.45105957924542695283e+08,3.60683302911080291841e-02,16.0,16.0,'bf16','bf16',NULL,5.00558199619624311083e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('91026e303e6669fc','mini','completed','import:mini.csv','{"Model Size": 2979521172.1967993, "Training FLOP": 9.227541223049181e+18, "color": "#f8d1b8", "hex_color": "#f8d1b8", "loss": 4.665232074214, "x": 151.60375, "y": 175.51709}',NULL,2.9795211721967992783e+09,5.16164661465034484881e+08,1.73237453816938835604e-01,16.0,16.0,'bf16','bf16',NULL,4.665232074214,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('4f265e8a217b49e6','mini','completed','import:mini.csv','{"Model Size": 2638630840.924473, "Training FLOP": 9.753046550244106e+18, "color": "#f47a54", "hex_color": "#f47a54", "loss": 3.7655629197937, "x": 153.29233, "y": 180.65761}',NULL,2.63863084092447280882e+09,6.16042128047174453739e+08,2.33470373533319813796e-01,16.0,16.0,'bf16','bf16',NULL,3.7655629197937,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('3197b99a485fb67d','mini','completed','import:mini.csv','{"Model Size": 2282804341.3355317, "Training FLOP": 9.62270802690676e+18, "color": "#f47d57", "hex_color": "#f47d57", "loss": 3.793872243318985, "x": 152.88216, "y": 186.78615}',NULL,2.28280434133553171167e+09,7.02550210769639730439e+08,3.07757523519786080345e-01,16.0,16.0,'bf16','bf16',NULL,3.7938722433189848715e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('4569011f091fbc24','mini','completed','import:mini.csv','{"Model Size": 2006673381.123053, "Training FLOP": 9.77173114380632e+18, "color": "#ed503e", "hex_color": "#ed503e", "loss": 3.446995430227908, "x": 153.35068, "y": 192.24076}',NULL,2.00667338112305307395e+09,811602861.044372,4.04451899685912497073e-01,16.0,16.0,'bf16','bf16',NULL,3.44699543022790821922e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('a97d09f94254531f','mini','completed','import:mini.csv','{"Model Size": 1730543416.124146, "Training FLOP": 9.08578900048968e+18, "color": "#eb483e", "hex_color": "#eb483e", "loss": 3.395737776160633, "x": 151.13178, "y": 198.50415}',NULL,1.73054341612414598465e+09,8.75041997004510164245e+08,0.505645792443809,16.0,16.0,'bf16','bf16',NULL,3.39573777616063310347e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('7ffbd870b1900688','mini','completed','import:mini.csv','{"Model Size": 2979521172.1967993, "Training FLOP": 9.691016918183068e+19, "color": "#931c5b", "hex_color": "#931c5b", "loss": 2.628284835801397, "x": 223.29648, "y": 175.51709}',NULL,2.9795211721967992783e+09,5.42090286666089153297e+09,1.81938726170019560157e+00,16.0,16.0,'bf16','bf16',NULL,2.62828483580139682374e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('50a72335d7fc83bc','mini','completed','import:mini.csv','{"Model Size": 2638630840.924473, "Training FLOP": 9.8356280085446e+19, "color": "#8c1d5b", "hex_color": "#8c1d5b", "loss": 2.585322489772079, "x": 223.74805, "y": 180.65761}',NULL,2.63863084092447280882e+09,6.21258309170333576209e+09,2.3544722495272170093e+00,16.0,16.0,'bf16','bf16',NULL,2.58532248977207901319e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('929bcb0d39905e43','mini','completed','import:mini.csv','{"Model Size": 2006673381.123053, "Training FLOP": 9.69281625689239e+19, "color": "#8b1d5b", "hex_color": "#8b1d5b", "loss": 2.577587469373751, "x": 223.30214, "y": 192.24076}',NULL,2.00667338112305307395e+09,8.05048490374960517852e+09,4.01185612939365210394e+00,16.0,16.0,'bf16','bf16',NULL,2.57758746937375082808e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('9dfbbb5ae5c650c7','mini','completed','import:mini.csv','{"Model Size": 1730543416.124146, "Training FLOP": 9.8125331160455e+19, "color": "#891e5b", "hex_color": "#891e5b", "loss": 2.566031188935832, "x": 223.67638, "y": 198.50415}',NULL,1.73054341612414598465e+09,9.45033895578532600386e+09,5.46090832956448402057e+00,16.0,16.0,'bf16','bf16',NULL,2.5660311889358320414e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('f94725ec2c364362','mini','completed','import:mini.csv','{"Model Size": 1793808923.9024398, "Training FLOP": 8.811341299700383e+18, "color": "#ec4a3e", "hex_color": "#ec4a3e", "loss": 3.4059279641864753, "x": 150.19669, "y": 196.98505}',NULL,1.79380892390243983263e+09,818680776.817937,4.56392409419445366225e-01,16.0,16.0,'bf16','bf16',NULL,3.40592796418647525413e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('3f6f8f41309dcc7b','mini','completed','import:mini.csv','{"Model Size": 1609079314.2122664, "Training FLOP": 9.746413883769387e+18, "color": "#e53940", "hex_color": "#e53940", "loss": 3.2856379825927915, "x": 153.27159, "y": 201.58304}',NULL,1.60907931421226644509e+09,1.00952283682597684856e+09,0.627391594627636,16.0,16.0,'bf16','bf16',NULL,3.28563798259279149505e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('d29d9acdbcc640d8','mini','completed','import:mini.csv','{"Model Size": 1429232579.4437304, "Training FLOP": 9.720361902576556e+18, "color": "#dd2c45", "hex_color": "#dd2c45", "loss": 3.1838780021322792, "x": 153.18999, "y": 206.59757}',NULL,1.42923257944373035426e+09,1.13351762365131235126e+09,7.93095287607064713952e-01,16.0,16.0,'bf16','bf16',NULL,3.18387800213227922796e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('777214b99b4ec668','mini','completed','import:mini.csv','{"Model Size": 1265593128.5465357, "Training FLOP": 9.389745074057572e+18, "color": "#d82748", "hex_color": "#d82748", "loss": 3.131833845205492, "x": 152.135, "y": 211.74208}',NULL,1.26559312854653573034e+09,1.23654077842552495005e+09,0.977044478619779,16.0,16.0,'bf16','bf16',NULL,3.13183384520549212837e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('e228f9ddd1f785ae','mini','completed','import:mini.csv','{"Model Size": 1793808923.9024398, "Training FLOP": 9.72604311906606e+19, "color": "#8b1d5b", "hex_color": "#8b1d5b", "loss": 2.577587469373751, "x": 223.40647, "y": 196.98505}',NULL,1.79380892390243983263e+09,9.03667701119749832133e+09,5.03770323069759573542e+00,16.0,16.0,'bf16','bf16',NULL,2.57758746937375082808e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('889d818b5de50b42','mini','completed','import:mini.csv','{"Model Size": 1265593128.5465357, "Training FLOP": 9.778503990571031e+19, "color": "#871e5b", "hex_color": "#871e5b", "loss": 2.554520985765487, "x": 223.57047, "y": 211.74208}',NULL,1.26559312854653573034e+09,1.28773665748869152068e+10,1.01749656223843949471e+01,16.0,16.0,'bf16','bf16',NULL,2.55452098576548713992e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('3619287579074e37','mini','completed','import:mini.csv','{"Model Size": 1143251954.0462997, "Training FLOP": 9.559185749312727e+18, "color": "#d5224a", "hex_color": "#d5224a", "loss": 3.094521210858053, "x": 152.68024, "y": 216.04328}',NULL,1.14325195404629969598e+09,1.39356650058341646194e+09,1.21894958994050361944e+00,16.0,16.0,'bf16','bf16',NULL,3.09452121085805309519e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('82674b4b39545634','mini','completed','import:mini.csv','{"Model Size": 1017958924.6402751, "Training FLOP": 9.617936820167483e+18, "color": "#d2204c", "hex_color": "#d2204c", "loss": 3.07143034313885, "x": 152.86704, "y": 220.95427}',NULL,1.0179589246402751207e+09,1.5747093828902535438e+09,1.54692821564163018877e+00,16.0,16.0,'bf16','bf16',NULL,3.07143034313885,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('12410b49aebb886e','mini','completed','import:mini.csv','{"Model Size": 816341492.834805, "Training FLOP": 9.292327618897863e+18, "color": "#cf1e4d", "hex_color": "#cf1e4d", "loss": 3.048504933511402, "x": 151.81705, "y": 230.29257}',NULL,816341492.834805,1.89714878321113324163e+09,2.32396466412989299854e+00,16.0,16.0,'bf16','bf16',NULL,3.04850493351140183762e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('f30595945404b7a2','mini','completed','import:mini.csv','{"Model Size": 632223970.1991626, "Training FLOP": 9.387219872346272e+18, "color": "#ca1a50", "hex_color": "#ca1a50", "loss": 2.998680336233436, "x": 152.1268, "y": 241.10602}',NULL,6.32223970199162602426e+08,2.4746556902899241447e+09,3.91420731724290771325e+00,16.0,16.0,'bf16','bf16',NULL,2.99868033623343599458e+00,NULL,NULL,'{}',NULL,0,NULL,NULL,NULL,NULL,NULL,'{}',NULL,'2026-11-26 06:07:34.252227',NULL,'2026-11-26 06:07:34.252227');
INSERT INTO "runs" VALUES('ebada809d0c40958','old','completed','quest-lab','{"a_bits": 4.0, "backend": "auto", "batch_size": 4, "corpus": "shakespeare", "device": "cpu", "divergence_factor": 3.0, "eval_every": 0, "eval_tokens": 512, "final_lr_frac": 0.1, "grad_clip": 1.0, "lr": null, "quantizer": "quest", "quantizer_options": {}, "seed": 0, "seq_len": 32, "size": "nano", "tokenizer": "byte", "tokens": 1024, "tokens_per_param": null, "vocab_size": 1024, "w_bits": 4.0, "warmup_frac": 0.1, "weight_decay": 0.1}','nano',26784.0,1024.0,NULL,4.0,4.0,'quest','quest:w4a4',0,1.68816685733656015599e+02,168.826685733656,10,'{"final_eval_loss_raw": "168.81668573365602", "final_train_loss_raw": "168.826685733656"}',NULL,1,0.01,1000000.0,'cpu','fake','vm','{"fake": "1"}','fake','2026-11-26 06:07:36.655877','2026-11-26 06:07:36.694141','2026-11-26 06:07:36.694801');
INSERT INTO "runs" VALUES('6d50847da8226d20','old','completed','quest-lab','{"a_bits": 16.0, "backend": "auto", "batch_size": 4, "corpus": "shakespeare", "device": "cpu", "divergence_factor": 3.0, "eval_every": 0, "eval_tokens": 512, "final_lr_frac": 0.1, "grad_clip": 1.0, "lr": null, "quantizer": "bf16", "quantizer_options": {}, "seed": 0, "seq_len": 32, "size": "nano", "tokenizer": "byte", "tokens": 1024, "tokens_per_param": null, "vocab_size": 1024, "w_bits": 16.0, "warmup_frac": 0.1, "weight_decay": 0.1}','nano',26784.0,1024.0,NULL,16.0,16.0,'bf16','bf16',0,1.68183624123564413824e+02,1.6819362412356440473e+02,10,'{"final_eval_loss_raw": "168.1836241235644", "final_train_loss_raw": "168.1936241235644"}',NULL,1,0.01,1000000.0,'cpu','fake','vm','{"fake": "1"}','fake','2026-11-26 06:07:36.655877','2026-11-26 06:07:36.696191','2026-11-26 06:07:36.696812');
INSERT INTO "runs" VALUES('2f6439885306cb1f','old','completed','quest-lab','{"a_bits": 4.0, "backend": "auto", "batch_size": 4, "corpus": "shakespeare", "device": "cpu", "divergence_factor": 3.0, "eval_every": 0, "eval_tokens": 512, "final_lr_frac": 0.1, "grad_clip": 1.0, "lr": null, "quantizer": "quest", "quantizer_options": {}, "seed": 0, "seq_len": 32, "size": "micro", "tokenizer": "byte", "tokens": 1024, "tokens_per_param": null, "vocab_size": 1024, "w_bits": 4.0, "warmup_frac": 0.1, "weight_decay": 0.1}','micro',55536.0,1024.0,NULL,4.0,4.0,'quest','quest:w4a4',0,1.65934854191850178041e+02,1.65944854191850168947e+02,10,'{"final_eval_loss_raw": "165.93485419185018", "final_train_loss_raw": "165.94485419185017"}',NULL,1,0.01,1000000.0,'cpu','fake','vm','{"fake": "1"}','fake','2026-11-26 06:07:36.655877','2026-11-26 06:07:36.681362','2026-11-26 06:07:36.682778');
INSERT INTO "runs" VALUES('f4f66acfc2382a99','old','completed','quest-lab','{"a_bits": 16.0, "backend": "auto", "batch_size": 4, "corpus": "shakespeare", "device": "cpu", "divergence_factor": 3.0, "eval_every": 0, "eval_tokens": 512, "final_lr_frac": 0.1, "grad_clip": 1.0, "lr": null, "quantizer": "bf16", "quantizer_options": {}, "seed": 0, "seq_len": 32, "size": "micro", "tokenizer": "byte", "tokens": 1024, "tokens_per_param": null, "vocab_size": 1024, "w_bits": 16.0, "warmup_frac": 0.1, "weight_decay": 0.1}','micro',55536.0,1024.0,NULL,16.0,16.0,'bf16','bf16',0,1.65440807195146675212e+02,1.65450807195146666118e+02,10,'{"final_eval_loss_raw": "165.44080719514668", "final_train_loss_raw": "165.45080719514667"}',NULL,1,0.01,1000000.0,'cpu','fake','vm','{"fake": "1"}','fake','2026-11-26 06:07:36.655877','2026-11-26 06:07:36.686735','2026-11-26 06:07:36.692222');
CREATE TABLE schema_version (
	version INTEGER NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_version" VALUES(1);
CREATE TABLE sweep_runs (
	sweep VARCHAR(200) NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	PRIMARY KEY (sweep, run_id), 
	FOREIGN KEY(sweep) REFERENCES sweeps (name), 
	FOREIGN KEY(run_id) REFERENCES runs (run_id)
);
INSERT INTO "sweep_runs" VALUES('mini','3dde80ca5550e736');
INSERT INTO "sweep_runs" VALUES('mini','91026e303e6669fc');
INSERT INTO "sweep_runs" VALUES('mini','4f265e8a217b49e6');
INSERT INTO "sweep_runs" VALUES('mini','3197b99a485fb67d');
INSERT INTO "sweep_runs" VALUES('mini','4569011f091fbc24');
INSERT INTO "sweep_runs" VALUES('mini','a97d09f94254531f');
INSERT INTO "sweep_runs" VALUES('mini','7ffbd870b1900688');
INSERT INTO "sweep_runs" VALUES('mini','50a72335d7fc83bc');
INSERT INTO "sweep_runs" VALUES('mini','929bcb0d39905e43');
INSERT INTO "sweep_runs" VALUES('mini','9dfbbb5ae5c650c7');
INSERT INTO "sweep_runs" VALUES('mini','f94725ec2c364362');
INSERT INTO "sweep_runs" VALUES('mini','3f6f8f41309dcc7b');
INSERT INTO "sweep_runs" VALUES('mini','d29d9acdbcc640d8');
INSERT INTO "sweep_runs" VALUES('mini','777214b99b4ec668');
INSERT INTO "sweep_runs" VALUES('mini','e228f9ddd1f785ae');
INSERT INTO "sweep_runs" VALUES('mini','889d818b5de50b42');
INSERT INTO "sweep_runs" VALUES('mini','3619287579074e37');
INSERT INTO "sweep_runs" VALUES('mini','82674b4b39545634');
INSERT INTO "sweep_runs" VALUES('mini','12410b49aebb886e');
INSERT INTO "sweep_runs" VALUES('mini','f30595945404b7a2');
INSERT INTO "sweep_runs" VALUES('old','ebada809d0c40958');
INSERT INTO "sweep_runs" VALUES('old','6d50847da8226d20');
INSERT INTO "sweep_runs" VALUES('old','2f6439885306cb1f');
INSERT INTO "sweep_runs" VALUES('old','f4f66acfc2382a99');
CREATE TABLE sweeps (
	name VARCHAR(200) NOT NULL, 
	spec TEXT NOT NULL, 
	path TEXT, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "sweeps" VALUES('mini','{"source": "import:mini.csv"}',NULL,'2026-11-26 06:07:34.252227','2026-11-26 06:07:34.252227');
INSERT INTO "sweeps" VALUES('old','{"base": {"batch_size": 4, "corpus": "shakespeare", "device": "cpu", "eval_tokens": 512, "quantizer": "quest", "seq_len": 32, "tokenizer": "byte"}, "exclude": [], "grid": {"bits": [4, 16], "size": ["nano", "micro"], "tokens": [1024]}, "include": [], "max_concurrent": null, "name": "old", "resources": {"cpus": 1.0, "gpus": 0.0}, "retries": 0, "store": "sqlite:///old.db"}','small.yaml','2026-11-26 06:07:36.655877','2026-11-26 06:07:36.655877');
CREATE INDEX ix_runs_sweep ON runs (sweep);
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_fits_law ON fits (law);
CREATE INDEX ix_sweep_runs_run_id ON sweep_runs (run_id);
COMMIT;
